/* Bump when any struct or function signature in a dpdk_shim header changes. */
#define LC_ABI_VERSION 6
