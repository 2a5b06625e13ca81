/* test-wrong-major: built "for ABI 7.0"; exports parley_plugin_entry_v7 only, no _v0. */
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
    .abi_major = 7,
    .abi_minor = 0,
    .name = "test-wrong-major",
    .kind = PARLEY_KIND_SERVICE,
    .version = "0.0.1",
    .description = "Kernel test plugin: another ABI major.",
    .vtable = &vtable,
};

PARLEY_EXPORT const parley_t_descriptor*
parley_plugin_entry_v7(uint16_t host_major, uint16_t host_minor, const char** error) {
    (void)host_minor;
    if (host_major != 7) {
        if (error) *error = "built for parley ABI major 7";
        return NULL;
    }
    return &descriptor;
}
