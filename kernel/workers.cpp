#include "workers.hpp"

#include <cstring>
#include <string>

namespace parley::kernel {

namespace {
std::atomic<int> g_pool_seq{0};
}

Workers::Workers(zmq::context_t& zmq, int threads, int queue_limit)
    : zmq_(zmq), endpoint_("inproc://parley-workers-" + std::to_string(g_pool_seq++)),
      push_(zmq, zmq::socket_type::push) {
    push_.set(zmq::sockopt::sndhwm, queue_limit);
    push_.set(zmq::sockopt::linger, 0);
    push_.bind(endpoint_);
    for (int i = 0; i < threads; ++i)
        threads_.emplace_back([this, i] { run(i); });
}

Workers::~Workers() {
    // Workers finish what is queued, then see the flag on their next receive timeout.
    stopping_.store(true);
    for (auto& t : threads_)
        t.join();
}

parley_t_status Workers::submit(parley_t_work_fn fn, void* user) {
    Item item{fn, user};
    std::lock_guard lk(push_mu_);
    auto sent = push_.send(zmq::buffer(&item, sizeof item), zmq::send_flags::dontwait);
    return sent ? PARLEY_OK : PARLEY_ERR_LIMIT;
}

void Workers::run(int) {
    zmq::socket_t pull(zmq_, zmq::socket_type::pull);
    pull.set(zmq::sockopt::rcvhwm, 1); // keep work in the shared queue, not in one worker
    pull.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::rcvtimeo, 100);
    pull.connect(endpoint_);
    for (;;) {
        zmq::message_t msg;
        if (!pull.recv(msg)) {
            if (stopping_.load()) return;
            continue;
        }
        if (msg.size() != sizeof(Item)) continue;
        Item item;
        std::memcpy(&item, msg.data(), sizeof item);
        item.fn(item.user);
    }
}

} // namespace parley::kernel
