#include "frame.hpp"

#include <cstdlib>
#include <new>

namespace parley::kernel {

namespace {
std::atomic<int64_t> g_alive{0};
}

parley_t_frame* frame_alloc(size_t capacity) {
    // malloc + placement-new: the block and its trailing bytes are one allocation that is
    // owned by the refcount, not by any C++ object.
    void* mem = std::malloc(sizeof(FrameBlock) + (capacity ? capacity : 1));
    if (!mem) return nullptr;
    auto* b = new (mem) FrameBlock{};
    b->pub.data = reinterpret_cast<char*>(b + 1);
    b->pub.len = 0;
    b->pub.capacity = capacity;
    b->pub.flags = PARLEY_FRAME_TEXT;
    b->refs.store(1, std::memory_order_relaxed);
    g_alive.fetch_add(1, std::memory_order_relaxed);
    return &b->pub;
}

void frame_retain(parley_t_frame* f) {
    reinterpret_cast<FrameBlock*>(f)->refs.fetch_add(1, std::memory_order_relaxed);
}

void frame_release(parley_t_frame* f) {
    if (!f) return;
    auto* b = reinterpret_cast<FrameBlock*>(f);
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        b->~FrameBlock();
        std::free(b);
        g_alive.fetch_sub(1, std::memory_order_relaxed);
    }
}

int64_t frames_alive() {
    return g_alive.load(std::memory_order_relaxed);
}

} // namespace parley::kernel
