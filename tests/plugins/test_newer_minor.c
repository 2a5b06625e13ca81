/* test-newer-minor: exports the right entry point, but its descriptor claims a minor newer than
 * the host's. */
#include "test_abi_common.h"

static const parley_t_plugin_vtable vtable = {
    .struct_size = sizeof(parley_t_plugin_vtable),
    .create = test_create,
    .start = test_start,
    .stop = test_stop,
    .destroy = test_destroy,
};

static const parley_t_descriptor descriptor = {
    .struct_size = sizeof(parley_t_descriptor),
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR + 1,
    .name = "test-newer-minor",
    .kind = PARLEY_KIND_SERVICE,
    .version = "0.0.1",
    .description = "Kernel test plugin: a newer ABI minor than the host.",
    .vtable = &vtable,
};

PARLEY_EXPORT const parley_t_descriptor*
parley_plugin_entry_v0(uint16_t host_major, uint16_t host_minor, const char** error) {
    (void)host_major;
    (void)host_minor;
    (void)error;
    return &descriptor;
}
