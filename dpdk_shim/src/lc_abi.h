/* Bump when any struct or function signature in dpdk_shim/*.h changes. */
#define LC_ABI_VERSION 1
