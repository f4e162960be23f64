/* Bump when any struct, constant or function signature in a dpdk_shim
 * header changes (lc_*.h: every module compiles this number in, and
 * dpdk_shim.load() refuses a module built with another). */
#define LC_ABI_VERSION 13
