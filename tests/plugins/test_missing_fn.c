/* test-missing-fn: a service whose vtable lacks the required `stop` hook. */
#include "test_abi_common.h"

static const parley_t_plugin_vtable vtable = {
    .struct_size = sizeof(parley_t_plugin_vtable),
    .create = test_create,
    .start = test_start,
    .stop = NULL,
    .destroy = test_destroy,
};

static const parley_t_descriptor descriptor = {
    .struct_size = sizeof(parley_t_descriptor),
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .name = "test-missing-fn",
    .kind = PARLEY_KIND_SERVICE,
    .version = "0.0.1",
    .description = "Kernel test plugin: no stop hook.",
    .vtable = &vtable,
};

PARLEY_EXPORT const parley_t_descriptor*
parley_plugin_entry_v0(uint16_t host_major, uint16_t host_minor, const char** error) {
    (void)host_major;
    (void)host_minor;
    (void)error;
    return &descriptor;
}
