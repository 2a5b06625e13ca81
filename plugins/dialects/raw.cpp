// `raw`: the minimal dialect used by transport tests and benchmarks. `/ws/<room>` joins a room;
// every text message is relayed to the other members as is. The room `echo` echoes instead,
// which is what RFC 6455 conformance suites expect of a server under test.
#include "dialect.hpp"

namespace parley::dialect {

namespace {

class RawSession final : public Session {
  public:
    RawSession(sdk::Host host, std::string room) : host_(host), room_(std::move(room)) {}
    void on_open(Conn& c) override {
        if (room_ == "echo") return;
        parley_t_join_result jr{sizeof jr};
        auto st =
            host_.table()->room_join(host_.ctx(), c.id(), sdk::bytes(room_), sdk::bytes(""), &jr);
        if (st == PARLEY_ERR_LIMIT) c.close(1008, "room full");
    }
    void on_text(Conn& c, std::string_view msg) override {
        if (room_ == "echo") {
            c.send_text(msg);
            return;
        }
        auto f = host_.frame_of(msg);
        host_.table()->room_publish(host_.ctx(), sdk::bytes(room_), f.get(), c.id());
    }
    void on_binary(Conn& c, std::string_view msg) override {
        if (room_ != "echo") return Session::on_binary(c, msg);
        auto f = host_.frame_of(msg, 0);
        c.send_frame(f.get());
    }
    void on_close(Conn&) override {}

  private:
    sdk::Host host_;
    std::string room_;
};

class Raw final : public Dialect {
  public:
    explicit Raw(const Env& env) : env_(env) {}
    std::unique_ptr<Session> upgrade(const HttpRequest& req, HttpReply& refusal) override {
        constexpr std::string_view prefix = "/ws/";
        if (req.path.substr(0, prefix.size()) != prefix || req.path.size() == prefix.size() ||
            req.path.size() > prefix.size() + 64) {
            refusal.status = 404;
            refusal.body = "not found\n";
            return nullptr;
        }
        return std::make_unique<RawSession>(env_.host, std::string(req.path.substr(prefix.size())));
    }

  private:
    Env env_;
};

} // namespace

std::unique_ptr<Dialect> make_raw(const Env& env) {
    return std::make_unique<Raw>(env);
}

} // namespace parley::dialect
