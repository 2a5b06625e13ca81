/* Shared pieces of the hand-written (no SDK) broken plugins of the kernel integration tests.
 * Each includes this, defines its descriptor and exports its entry point. */
#ifndef PARLEY_TEST_ABI_COMMON_H
#define PARLEY_TEST_ABI_COMMON_H

#include <parley/plugin.h>

/* Not every plugin uses every hook (test-missing-fn leaves out stop). */
#define TEST_HOOK static __attribute__((unused))

static int test_instance;

TEST_HOOK parley_t_instance_pptr test_create(const parley_t_host* host,
                                             parley_t_host_ctx_hptr ctx) {
    (void)host;
    (void)ctx;
    return &test_instance;
}
TEST_HOOK parley_t_status test_start(parley_t_instance_pptr inst) {
    (void)inst;
    return PARLEY_OK;
}
TEST_HOOK void test_stop(parley_t_instance_pptr inst) {
    (void)inst;
}
TEST_HOOK void test_destroy(parley_t_instance_pptr inst) {
    (void)inst;
}

#endif
