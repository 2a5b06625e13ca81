// parley chat: a terminal client for link rooms (the `link` dialect, see
// plugins/dialects/link.cpp) that shares rooms with the web client: same invite links, same
// AES-256-GCM envelopes, same display names (link_crypto.hpp).
#include "commands.hpp"
#include "link_crypto.hpp"
#include "utf8.hpp"
#include "ws_client.hpp"

#include <simdjson.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <string>
#include <unordered_set>

#include <poll.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

namespace parley::cli {

namespace {

enum Exit : int {
    kOk = 0,
    kTimedOut = 1,
    kUsage = 2,
    kFailed = 3,
    kAuth = 4,
    kInterrupted = 130,
};

constexpr auto kCloseGrace = std::chrono::seconds(2);
constexpr double kScriptTimeout = 30;

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) {
    g_interrupted = 1;
}

int chat_usage(FILE* out) {
    std::fprintf(
        out,
        "usage: parley chat INVITE [--name NAME] [--password PW] [--send TEXT]\n"
        "                          [--wait-for TEXT] [--timeout SECONDS] [--json]\n"
        "\n"
        "Joins a link room from the terminal, side by side with the web client. INVITE is the\n"
        "invite link http://HOST[:PORT]/room/<roomId>#<key>, or '-' to read it from stdin\n"
        "(asked without echo on a terminal), which keeps the key out of 'ps'. The key after\n"
        "'#' is used only inside this process: never sent, printed or logged. Messages are\n"
        "AES-256-GCM encrypted exactly as the web client does it.\n"
        "\n"
        "Plain ws:// only, no TLS: connect to parleyd directly or over a trusted network;\n"
        "https:// invite links are refused (TLS is the job of the reverse proxy in front).\n"
        "\n"
        "Interactive (without --send/--wait-for): prints the history and new messages as\n"
        "'[HH:MM] Name: text' and sends every line read from stdin. /clear clears the room's\n"
        "history for everyone, /quit or end of input leaves, '//text' sends '/text'.\n"
        "\n"
        "  --name NAME        name put inside your messages (default: derived from your\n"
        "                     random client id like the web client; names are not verified)\n"
        "  --password PW      room password if the room has one. Prefer $PARLEY_ROOM_PASSWORD\n"
        "                     (command lines are visible to other users); on a terminal you\n"
        "                     are asked when neither is given\n"
        "  --send TEXT        send TEXT once the history has arrived\n"
        "  --wait-for TEXT    exit 0 once a message containing TEXT arrives (history counts)\n"
        "  --timeout SECONDS  give up and exit 1 after this long (default 30 with --send or\n"
        "                     --wait-for, none interactively; 0 = no limit)\n"
        "  --json             one JSON object per line on stdout for every event\n"
        "\n"
        "exit codes: 0 ok, 1 timed out, 2 usage or bad invite link, 3 connection or server\n"
        "error, 4 password missing or wrong, 130 interrupted\n");
    return kUsage;
}

struct Options {
    std::string invite;
    std::optional<std::string> name, password, send, wait_for;
    double timeout = -1;
    bool json = false;
};

struct Invite {
    std::string host;
    uint16_t port = 80;
    std::string room;
    std::optional<link::RoomKey> key;
};

bool valid_room(std::string_view r) {
    if (r.empty() || r.size() > 64) return false;
    for (char c : r)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

// http://host[:port]/room/<roomId>[/][?query]#<key>. Error texts never quote the link: it
// holds the key.
std::optional<Invite> parse_invite(std::string_view url, std::string& err) {
    const std::string_view expected =
        "expected an invite link like http://HOST:PORT/room/<roomId>#<key>";
    auto starts_ci = [&](std::string_view prefix) {
        if (url.size() < prefix.size()) return false;
        for (size_t i = 0; i < prefix.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) return false;
        return true;
    };
    if (starts_ci("https://")) {
        err = "https:// invite links need TLS, which parley chat does not speak; connect to "
              "parleyd's own http:// port (e.g. over an SSH tunnel) and use that URL instead";
        return std::nullopt;
    }
    if (!starts_ci("http://")) return err = expected, std::nullopt;
    url.remove_prefix(7);
    auto hash = url.find('#');
    if (hash == url.npos || hash + 1 == url.size()) {
        err = "the invite link has no key (the part after '#'); ask for the full link";
        return std::nullopt;
    }
    std::string_view fragment = url.substr(hash + 1);
    url = url.substr(0, hash);
    auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    std::string_view path = slash == url.npos ? "" : url.substr(slash);
    path = path.substr(0, path.find('?'));
    Invite inv;
    if (authority.find('@') != authority.npos) return err = expected, std::nullopt;
    std::string_view port;
    if (authority.starts_with("[")) {
        auto close = authority.find(']');
        if (close == authority.npos) return err = expected, std::nullopt;
        inv.host = authority.substr(1, close - 1);
        auto rest = authority.substr(close + 1);
        if (!rest.empty() && !rest.starts_with(":")) return err = expected, std::nullopt;
        if (!rest.empty()) port = rest.substr(1);
    } else {
        auto colon = authority.find(':');
        inv.host = authority.substr(0, colon);
        if (colon != authority.npos) port = authority.substr(colon + 1);
    }
    if (inv.host.empty()) return err = expected, std::nullopt;
    if (!port.empty()) {
        unsigned long p = 0;
        for (char c : port) {
            if (c < '0' || c > '9' || p > 65535)
                return err = "bad port in the invite link", std::nullopt;
            p = p * 10 + unsigned(c - '0');
        }
        if (p == 0 || p > 65535) return err = "bad port in the invite link", std::nullopt;
        inv.port = uint16_t(p);
    }
    constexpr std::string_view prefix = "/room/";
    if (!path.starts_with(prefix)) return err = expected, std::nullopt;
    path.remove_prefix(prefix.size());
    if (path.ends_with("/")) path.remove_suffix(1);
    if (!valid_room(path)) return err = "bad room id in the invite link", std::nullopt;
    inv.room = path;
    inv.key = link::RoomKey::from_base64url(fragment);
    if (!inv.key) {
        err = "the invite link is damaged: its key is not 32 bytes of base64url";
        return std::nullopt;
    }
    return inv;
}

// Reads one line from fd 0 byte by byte (so nothing after it is consumed), with echo off when
// stdin is a terminal. nullopt on EOF before any byte, or on an interrupt.
std::optional<std::string> read_secret_line(const char* prompt) {
    const bool tty = ::isatty(0);
    termios saved{};
    if (tty) {
        std::fputs(prompt, stderr);
        std::fflush(stderr);
        if (::tcgetattr(0, &saved) == 0) {
            termios quiet = saved;
            quiet.c_lflag &= ~tcflag_t(ECHO);
            quiet.c_lflag |= ECHONL;
            ::tcsetattr(0, TCSAFLUSH, &quiet);
        }
    }
    std::string line;
    bool got = false, ok = true;
    for (;;) {
        char c;
        ssize_t n = ::read(0, &c, 1);
        if (n < 0 && errno == EINTR && !g_interrupted) continue;
        if (n <= 0) {
            ok = got;
            break;
        }
        got = true;
        if (c == '\n') break;
        line += c;
    }
    if (tty) ::tcsetattr(0, TCSAFLUSH, &saved);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!ok || g_interrupted) {
        sodium_memzero(line.data(), line.size());
        return std::nullopt;
    }
    return line;
}

void wipe(std::string& s) {
    sodium_memzero(s.data(), s.size());
    s.clear();
}

// Terminal output must not let a peer drive the terminal: C0/C1 controls (but newline and
// tab), DEL and the bidirectional overrides become U+FFFD.
std::string sanitize(std::string_view utf8) {
    std::string out;
    out.reserve(utf8.size());
    for (size_t i = 0; i < utf8.size();) {
        const auto b = static_cast<unsigned char>(utf8[i]);
        const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        uint32_t cp = b;
        if (n == 2) cp = (b & 0x1F) << 6 | (utf8[i + 1] & 0x3F);
        if (n == 3) cp = (b & 0x0F) << 12 | (utf8[i + 1] & 0x3F) << 6 | (utf8[i + 2] & 0x3F);
        const bool bad = (cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7F && cp < 0xA0) ||
                         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
        if (bad)
            out += "\xEF\xBF\xBD";
        else
            out.append(utf8.substr(i, n));
        i += n;
    }
    return out;
}

std::string hh_mm(int64_t ts_ms) {
    std::time_t t = std::time_t(ts_ms / 1000);
    std::tm tm{};
    char buf[16] = "--:--";
    if (::localtime_r(&t, &tm)) std::strftime(buf, sizeof buf, "%H:%M", &tm);
    return buf;
}

int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view str_field(simdjson::dom::object o, std::string_view k) {
    std::string_view v;
    if (o[k].get_string().get(v)) return {};
    return v;
}

std::optional<int64_t> int_field(simdjson::dom::object o, std::string_view k) {
    double d = 0;
    auto el = o[k];
    if (el.error() || !el.value_unsafe().is_number() || el.get_double().get(d)) return std::nullopt;
    return int64_t(std::fmax(-9e15, std::fmin(9e15, d))); // display only; conversion defined
}

class Chat {
  public:
    Chat(Options opt, Invite inv) : opt_(std::move(opt)), inv_(std::move(inv)) {
        client_id_ = link::random_client_id();
        my_name_ = opt_.name ? *opt_.name : link::display_name(client_id_);
        script_ = opt_.send || opt_.wait_for;
        color_ = !opt_.json && ::isatty(1) && !std::getenv("NO_COLOR");
        double t = opt_.timeout >= 0 ? opt_.timeout : script_ ? kScriptTimeout : 0;
        if (t > 0)
            deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(t));
        timeout_ = t;
    }

    int run();

  private:
    // ---- output
    void out_line(const std::string& s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
    void note(const std::string& text) { // a system line: dimmed, or a JSON event
        if (opt_.json) return;
        out_line(color_ ? "\x1b[2m-- " + sanitize(text) + "\x1b[0m" : "-- " + sanitize(text));
    }
    void diag(const std::string& text) { // diagnostics always go to stderr
        std::fprintf(stderr, "parley chat: %s\n", text.c_str());
    }
    std::string name_of(std::string_view id) const {
        if (id.empty()) return "someone";
        if (id == client_id_) return "you";
        return link::display_name(id);
    }
    void print_message(const link::ChatMessage& m, std::string_view from, bool history,
                       std::optional<int64_t> sent_at, bool own);

    // ---- protocol
    void handle_frame(std::string& text);
    void receive(simdjson::dom::object env, bool history);
    void on_system(simdjson::dom::object f);
    void on_error(simdjson::dom::object f);
    void maybe_online();
    void send_message(const std::string& text);
    void handle_line(std::string line);
    void read_stdin();
    void check_done();
    void finish(int code) {
        if (result_ < 0) result_ = code;
    }
    void close_gracefully();

    Options opt_;
    Invite inv_;
    std::string client_id_, my_name_;
    bool script_ = false, color_ = false;
    double timeout_ = 0;
    Deadline deadline_ = kNoDeadline;
    WsClient ws_;
    simdjson::dom::parser parser_;
    std::unordered_set<std::string> seen_ivs_, seen_ids_;
    bool auth_pending_ = false, history_done_ = false, online_ = false;
    bool sent_ = false, matched_ = false, stdin_eof_ = false;
    bool stdin_tty_ = ::isatty(0) != 0, erase_typed_line_ = false;
    int decrypt_failures_ = 0;
    int64_t members_ = -1;
    int64_t cleared_at_ = 0;
    std::string stdin_buf_;
    std::deque<std::string> outbox_; // lines typed before the room was ready
    int result_ = -1;
};

void Chat::print_message(const link::ChatMessage& m, std::string_view from, bool history,
                         std::optional<int64_t> sent_at, bool own) {
    const std::string expected = from.empty() ? "" : link::display_name(from);
    if (opt_.json) {
        std::string j = own ? R"({"type":"sent")" : R"({"type":"message")";
        if (!own) j += std::string(",\"history\":") + (history ? "true" : "false");
        j += ",\"from\":" + link::json_quote(from);
        j += ",\"fromName\":" + link::json_quote(expected);
        j += ",\"name\":" + link::json_quote(m.name);
        j += ",\"text\":" + link::json_quote(m.text);
        j += ",\"id\":" + link::json_quote(m.id);
        j += ",\"ts\":" + std::to_string(m.ts);
        if (sent_at) j += ",\"sentAt\":" + std::to_string(*sent_at);
        j += '}';
        return out_line(j);
    }
    // The name inside the ciphertext is the sender's claim; say so when it differs from the
    // one the relay-reported client id gives (the web client flags it the same way).
    std::string who = own                 ? "You"
                      : !m.name.empty()   ? m.name
                      : !expected.empty() ? expected
                                          : "Unknown";
    who = sanitize(who);
    if (!own && !expected.empty() && !m.name.empty() && m.name != expected)
        who += " [normally " + expected + "]";
    if (color_) {
        static constexpr int kColors[] = {31, 32, 33, 34, 35, 36};
        const int c = kColors[link::hue_index(from.empty() ? m.name : from) % 6];
        who = "\x1b[1;" + std::to_string(c) + "m" + who + "\x1b[0m";
    }
    std::string text = sanitize(m.text);
    for (size_t p = 0; (p = text.find('\n', p)) != text.npos; p += 5)
        text.insert(p + 1, "    ");
    out_line("[" + hh_mm(m.ts) + "] " + who + ": " + text);
}

void Chat::handle_frame(std::string& text) {
    simdjson::dom::object f;
    if (parser_.parse(text).get_object().get(f)) return; // not for us
    auto type = str_field(f, "type");
    if (type == "history") {
        simdjson::dom::array list;
        if (!f["messages"].get_array().get(list))
            for (auto el : list) {
                simdjson::dom::object env;
                if (!el.get_object().get(env)) receive(env, true);
            }
        history_done_ = true;
        maybe_online();
    } else if (type == "message") {
        receive(f, false);
    } else if (type == "auth_ok") {
        auth_pending_ = false;
        maybe_online();
    } else if (type == "system") {
        on_system(f);
    } else if (type == "history_cleared") {
        auto by = str_field(f, "by");
        if (now_ms() - cleared_at_ > 2000) note("History cleared by " + name_of(by));
        if (opt_.json) out_line(R"({"type":"history_cleared","by":)" + link::json_quote(by) + "}");
        cleared_at_ = now_ms();
    } else if (type == "error") {
        on_error(f);
    }
    // Anything else is ignored, like the web client does, so the server can evolve.
}

void Chat::receive(simdjson::dom::object env, bool history) {
    auto iv = str_field(env, "iv");
    auto ct = str_field(env, "ciphertext");
    if (iv.empty() || ct.empty()) return;
    if (seen_ivs_.count(std::string(iv))) return; // replayed, or history/live overlap
    auto from = str_field(env, "from");
    auto msg = link::open_message(*inv_.key, iv, ct);
    if (!msg) {
        ++decrypt_failures_;
        if (decrypt_failures_ == 1 || !history)
            note("A message could not be decrypted (different key or tampered with).");
        if (opt_.json)
            out_line(std::string(R"({"type":"undecryptable","history":)") +
                     (history ? "true" : "false") + ",\"from\":" + link::json_quote(from) + "}");
        return;
    }
    if (seen_ids_.count(msg->id)) return;
    seen_ivs_.emplace(iv);
    seen_ids_.insert(msg->id);
    print_message(*msg, from, history, int_field(env, "sentAt"), false);
    if (opt_.wait_for && msg->text.find(*opt_.wait_for) != std::string::npos) {
        matched_ = true;
        check_done();
    }
}

void Chat::on_system(simdjson::dom::object f) {
    if (auto m = int_field(f, "members")) members_ = *m;
    auto event = str_field(f, "event");
    auto who = str_field(f, "clientId");
    if (event == "connected") {
        if (!opt_.json && !script_)
            note(std::string("online") +
                 (members_ >= 0 ? " · " + std::to_string(members_) + " here" : "") +
                 " · type a message and press Enter, /help for commands");
        return;
    }
    if (event == "history_cleared") {
        if (now_ms() - cleared_at_ > 2000) note("History cleared by " + name_of(who));
        cleared_at_ = now_ms();
        return;
    }
    if ((event == "joined" || event == "left") && who == client_id_) return;
    if (opt_.json) {
        std::string j = R"({"type":"system","event":)" + link::json_quote(event) +
                        ",\"clientId\":" + link::json_quote(who) +
                        ",\"name\":" + link::json_quote(who.empty() ? "" : link::display_name(who));
        if (members_ >= 0) j += ",\"members\":" + std::to_string(members_);
        return out_line(j + "}");
    }
    std::string line;
    if (event == "joined" || event == "left")
        line = name_of(who) + " (" + std::string(who) + ") " + std::string(event);
    else
        line = std::string(str_field(f, "text"));
    if (line.empty()) return;
    if (members_ >= 0) line += " · " + std::to_string(members_) + " online";
    note(line);
}

void Chat::on_error(simdjson::dom::object f) {
    auto code = str_field(f, "code");
    auto message = str_field(f, "message");
    if (opt_.json)
        out_line(R"({"type":"error","code":)" + link::json_quote(code) +
                 ",\"message\":" + link::json_quote(message) + "}");
    if (code == "bad_password") {
        diag("wrong room password");
        return finish(kAuth);
    }
    if (code == "password_required" || code == "auth_required" || code == "too_many_attempts") {
        diag(code == "too_many_attempts" ? "too many password attempts; try again later"
                                         : "this room requires a password");
        return finish(kAuth);
    }
    diag("server: " + sanitize(message.empty() ? code : message) + " (" + sanitize(code) + ")");
    if (code == "room_full" || code == "room_limit" || code == "invalid_room" ||
        code == "invalid_client" || code == "forbidden")
        finish(kFailed);
}

void Chat::maybe_online() {
    if (online_ || !history_done_ || auth_pending_) return;
    online_ = true;
    if (opt_.json) {
        std::string j = R"({"type":"ready","clientId":)" + link::json_quote(client_id_) +
                        ",\"name\":" + link::json_quote(my_name_) +
                        ",\"room\":" + link::json_quote(inv_.room);
        if (members_ >= 0) j += ",\"members\":" + std::to_string(members_);
        out_line(j + "}");
    }
    if (opt_.send && !sent_) {
        send_message(*opt_.send);
        sent_ = true;
    }
    while (!outbox_.empty() && result_ < 0) {
        auto line = std::move(outbox_.front());
        outbox_.pop_front();
        handle_line(std::move(line));
    }
    check_done();
}

void Chat::send_message(const std::string& text) {
    auto sealed = link::seal_message(*inv_.key, text, my_name_);
    if (!sealed) {
        diag("not sent: a message must be 1.." + std::to_string(link::kMaxText) +
             " characters of UTF-8");
        return;
    }
    const auto& w = sealed->wire;
    std::string frame =
        R"({"type":"message","iv":")" + w.iv + R"(","ciphertext":")" + w.ciphertext + "\"}";
    if (!ws_.send_text(frame)) {
        diag("not sent: the connection is gone");
        return finish(kFailed);
    }
    seen_ivs_.insert(w.iv);
    seen_ids_.insert(sealed->msg.id);
    // On a terminal the line just typed is still on screen: replace it with the formatted one.
    if (std::exchange(erase_typed_line_, false)) std::fputs("\x1b[1A\x1b[2K", stdout);
    print_message(sealed->msg, client_id_, false, std::nullopt, true);
}

void Chat::handle_line(std::string line) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
        line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return;
    if (!online_) {
        outbox_.push_back(std::move(line));
        return;
    }
    if (line.starts_with("/") && !line.starts_with("//")) {
        if (line == "/quit" || line == "/exit") return finish(kOk);
        if (line == "/clear") {
            ws_.send_text(R"({"type":"clear_history"})");
            if (now_ms() - cleared_at_ > 2000) note("You cleared the history");
            cleared_at_ = now_ms();
            return;
        }
        if (line == "/help") {
            note("/clear clears the room history for everyone, /quit leaves, //text sends /text");
            return;
        }
        note("unknown command " + line + " (/help lists them; //text sends /text)");
        return;
    }
    if (line.starts_with("//")) line.erase(0, 1);
    if (!ws::is_valid_utf8(line)) return note("not sent: the line is not valid UTF-8");
    if (link::utf16_length(line) > link::kMaxText)
        return note("not sent: messages are limited to " + std::to_string(link::kMaxText) +
                    " characters");
    send_message(line);
}

void Chat::read_stdin() {
    char buf[4096];
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        stdin_eof_ = true;
        if (!stdin_buf_.empty()) handle_line(std::exchange(stdin_buf_, {}));
        check_done();
        return;
    }
    stdin_buf_.append(buf, size_t(n));
    // One line typed on a terminal (not a paste of several): its echo is the line above.
    const bool one_typed_line = color_ && stdin_tty_ && online_ &&
                                std::count(stdin_buf_.begin(), stdin_buf_.end(), '\n') == 1 &&
                                stdin_buf_.back() == '\n';
    size_t eol;
    while ((eol = stdin_buf_.find('\n')) != std::string::npos && result_ < 0) {
        std::string line = stdin_buf_.substr(0, eol);
        stdin_buf_.erase(0, eol + 1);
        erase_typed_line_ = one_typed_line;
        handle_line(std::move(line));
        erase_typed_line_ = false;
    }
    if (stdin_buf_.size() > 64 * 1024) { // no newline in sight: not a chat line
        stdin_buf_.clear();
        note("not sent: line too long");
    }
}

void Chat::check_done() {
    if (result_ >= 0) return;
    if (script_) {
        if (opt_.send && !sent_) return;
        if (opt_.wait_for && !matched_) return;
        return finish(kOk);
    }
    if (stdin_eof_ && outbox_.empty() && online_) finish(kOk);
}

void Chat::close_gracefully() {
    if (ws_.state() != WsClient::State::Open) return;
    ws_.close(1000);
    const auto until = Clock::now() + kCloseGrace;
    while (ws_.state() != WsClient::State::Closed && Clock::now() < until) {
        pollfd p{ws_.fd(), POLLIN, 0};
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (::poll(&p, 1, int(std::max<int64_t>(ms.count(), 0))) <= 0) break;
        ws_.read_available(); // messages during the close are dropped
    }
    ws_.abort();
}

int Chat::run() {
    std::string err;
    const std::string where = host_header(inv_.host, inv_.port);
    // 1. Does the room want a password? (parley extension; older servers just 404 here.)
    bool password_required = false;
    auto info_deadline = std::min(deadline_, Clock::now() + std::chrono::seconds(10));
    if (auto res = http_get(inv_.host, inv_.port, "/api/room/" + inv_.room + "/info", info_deadline,
                            err)) {
        simdjson::dom::object o;
        bool pw = false;
        if (res->status == 200 && !parser_.parse(res->body).get_object().get(o) &&
            !o["passwordRequired"].get_bool().get(pw))
            password_required = pw;
    } else {
        diag(err);
        return Clock::now() >= deadline_ ? kTimedOut : kFailed;
    }
    std::string password;
    if (password_required) {
        if (opt_.password)
            password = *opt_.password;
        else if (const char* env = std::getenv("PARLEY_ROOM_PASSWORD"); env && *env)
            password = env;
        else if (::isatty(0)) {
            auto line = read_secret_line("Room password: ");
            if (!line) return g_interrupted ? kInterrupted : kAuth;
            password = std::move(*line);
        }
        if (password.empty()) {
            diag("this room is password-protected: use --password, $PARLEY_ROOM_PASSWORD or "
                 "run on a terminal to be asked");
            return kAuth;
        }
    }
    if (opt_.password) wipe(*opt_.password);

    // 2. The WebSocket. Our client id is fresh per run: names follow from it.
    if (!ws_.connect(inv_.host, inv_.port, "/ws/" + inv_.room + "?client=" + client_id_, deadline_,
                     err)) {
        wipe(password);
        diag(err);
        return Clock::now() >= deadline_ ? kTimedOut : kFailed;
    }
    if (!password.empty()) {
        std::string frame = R"({"type":"auth","password":)" + link::json_quote(password) + "}";
        auth_pending_ = true;
        bool ok = ws_.send_text(frame);
        wipe(frame);
        wipe(password);
        if (!ok) {
            diag("connection lost while authenticating");
            return kFailed;
        }
    }
    if (!opt_.json)
        note("room " + inv_.room + " on " + where + " as " + my_name_ + " (" + client_id_ + ")");

    // 3. Frames, stdin and the clock until something decides the outcome.
    bool first = true;
    while (result_ < 0) {
        if (g_interrupted) {
            finish(kInterrupted);
            break;
        }
        pollfd fds[2] = {{ws_.fd(), POLLIN, 0}, {0, POLLIN, 0}};
        const bool want_stdin = !script_ && !stdin_eof_;
        int n = 0;
        if (!first) {
            int r = ::poll(fds, want_stdin ? 2 : 1, poll_timeout_ms(deadline_));
            if (r < 0 && errno == EINTR) continue;
            n = r;
        }
        if (first || (n > 0 && fds[0].revents)) {
            first = false; // bytes may have come with the handshake response
            for (auto& text : ws_.read_available()) {
                handle_frame(text);
                if (result_ >= 0) break;
            }
            if (result_ < 0 && ws_.state() == WsClient::State::Closed) {
                diag("disconnected: " + (ws_.close_reason().empty()
                                             ? "close code " + std::to_string(ws_.close_code())
                                             : sanitize(ws_.close_reason())));
                finish(kFailed);
            }
        }
        if (result_ < 0 && n > 0 && want_stdin && fds[1].revents) read_stdin();
        if (result_ < 0 && Clock::now() >= deadline_) {
            std::string what = !online_ ? "the room" : opt_.wait_for ? "the awaited message" : "";
            char secs[32];
            std::snprintf(secs, sizeof secs, "%gs", timeout_);
            diag("timed out after " + std::string(secs) +
                 (what.empty() ? "" : " waiting for " + what));
            finish(kTimedOut);
        }
    }
    close_gracefully();
    return result_;
}

} // namespace

void chat_scrub_argv(int argc, char** argv) {
    // What is left in argv shows in ps and /proc/<pid>/cmdline: blank the key and password
    // (they were visible until now; '-' and $PARLEY_ROOM_PASSWORD avoid even that).
    for (int i = 2; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--password" && i + 1 < argc) {
            sodium_memzero(argv[i + 1], std::strlen(argv[i + 1]));
            ++i;
        } else if (a.starts_with("--password=")) {
            sodium_memzero(argv[i] + 11, a.size() - 11);
        } else if (auto hash = a.find('#'); hash != a.npos && a.find("/room/") != a.npos) {
            sodium_memzero(argv[i] + hash + 1, a.size() - hash - 1);
        }
    }
}

int cmd_chat(std::vector<std::string> args) {
    Options opt;
    bool have_invite = false;
    for (size_t i = 0; i < args.size(); ++i) {
        // Views into args, which are wiped below: no stray copies of the link or password.
        std::string_view a = args[i];
        std::optional<std::string_view> inline_value;
        if (a.starts_with("--") && a.find('=') != a.npos) {
            inline_value = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
        }
        auto value = [&]() -> std::optional<std::string> {
            if (inline_value) return std::string(*inline_value);
            if (i + 1 < args.size()) return args[++i];
            std::fprintf(stderr, "parley chat: %.*s needs a value\n", int(a.size()), a.data());
            return std::nullopt;
        };
        if (a == "-h" || a == "--help") return chat_usage(stdout), kOk;
        if (a == "--json") {
            opt.json = true;
        } else if (a == "--name" || a == "--password" || a == "--send" || a == "--wait-for" ||
                   a == "--timeout") {
            auto v = value();
            if (!v) return chat_usage(stderr);
            if (a == "--name")
                opt.name = std::move(*v);
            else if (a == "--password")
                opt.password = std::move(*v);
            else if (a == "--send")
                opt.send = std::move(*v);
            else if (a == "--wait-for")
                opt.wait_for = std::move(*v);
            else {
                char* end = nullptr;
                opt.timeout = std::strtod(v->c_str(), &end);
                if (v->empty() || *end || !(opt.timeout >= 0) || opt.timeout > 1e7) {
                    std::fprintf(stderr, "parley chat: --timeout wants seconds (0 = none)\n");
                    return kUsage;
                }
            }
        } else if (a.starts_with("-") && a != "-") {
            std::fprintf(stderr, "parley chat: unknown option %.*s\n", int(a.size()), a.data());
            return chat_usage(stderr);
        } else if (!have_invite) {
            opt.invite = args[i];
            have_invite = true;
        } else {
            std::fprintf(stderr, "parley chat: more than one invite link given\n");
            return chat_usage(stderr);
        }
    }
    for (auto& a : args)
        wipe(a); // copies of the invite link and the password
    if (!have_invite) return chat_usage(stderr);
    if (opt.name && (!ws::is_valid_utf8(*opt.name) || opt.name->empty())) {
        std::fprintf(stderr, "parley chat: --name must be non-empty UTF-8\n");
        return kUsage;
    }
    if (opt.send && (opt.send->empty() || !ws::is_valid_utf8(*opt.send) ||
                     link::utf16_length(*opt.send) > link::kMaxText)) {
        std::fprintf(stderr, "parley chat: --send wants 1..%zu characters of UTF-8\n",
                     link::kMaxText);
        return kUsage;
    }
    if (!link::init()) {
        std::fprintf(stderr, "parley chat: cannot initialise libsodium\n");
        return kFailed;
    }
    // No core dumps and no ptrace by other processes of this user: memory holds the key.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct sigaction sa {};
    sa.sa_handler = on_signal; // no SA_RESTART: poll() and read() return EINTR
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);

    if (opt.invite == "-") {
        auto line = read_secret_line("Invite link: ");
        if (!line) return g_interrupted ? kInterrupted : kUsage;
        wipe(opt.invite);
        opt.invite = std::move(*line);
    }
    std::string err;
    auto inv = parse_invite(opt.invite, err);
    wipe(opt.invite);
    if (!inv) {
        std::fprintf(stderr, "parley chat: %s\n", err.c_str());
        return kUsage;
    }
    try {
        Chat chat(std::move(opt), std::move(*inv));
        return chat.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "parley chat: %s\n", e.what());
        return kFailed;
    }
}

} // namespace parley::cli
