// Refcounted frame buffers shared by every recipient of a fan-out (parley_t_frame in plugin.h).
#pragma once

#include <parley/plugin.h>

#include <atomic>
#include <cstddef>

namespace parley::kernel {

// One allocation holds the public header, the refcount and the bytes, so a fan-out to N members
// costs one allocation and N atomic increments, never N copies.
struct FrameBlock {
    parley_t_frame pub; // first member: parley_t_frame* and FrameBlock* convert to each other
    std::atomic<uint32_t> refs;
};

parley_t_frame* frame_alloc(size_t capacity);
void frame_retain(parley_t_frame* f);
void frame_release(parley_t_frame* f);
// Number of frames alive in the process (metrics, leak tests).
int64_t frames_alive();

} // namespace parley::kernel
