/* arrow_export.c - batches of a ring as an Arrow C stream, without copying.
 *
 * One call hands pyarrow every batch a worker took from its ring: pyarrow
 * imports the stream in C++ (RecordBatchReader._import_from_c) and the
 * worker gets one Table whose chunks are the batches, their buffers still
 * in the ring. No Python runs per batch.
 *
 * Each exported record batch is a struct array with one child per column
 * (see lc_batch.h), all in one allocation that also holds a reference on
 * the ring's mapping (ring_map.h): the memory stays mapped until pyarrow
 * releases the last array, whatever the ring handle does meanwhile. The
 * schema carries the schema version as metadata, as appliance/batch.py's
 * SCHEMA does, so the two compare equal.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../lc_batch.h"
#include "../lc_ring.h"
#include "arrow_c.h"
#include "ring_map.h"

#define LC_MAX_BUFFERS 3                       /* validity, offsets/values, data */

/* Arrow C format strings of our column kinds. */
static const char *lc_format(int kind)
{
    switch (kind) {
    case LC_KIND_I64: return "tsn:UTC";        /* timestamp[ns, UTC] */
    case LC_KIND_U16: return "S";
    case LC_KIND_U8: return "C";
    case LC_KIND_STR: return "u";
    default: return "z";                       /* binary */
    }
}

/* ---- schema --------------------------------------------------------------- */

/* {"logcaster.schema": "2"} in the C data interface's metadata encoding:
 * int32 pair count, then per pair int32 length + key, int32 length + value
 * (native endianness). */
static const char lc_meta_key[] = "logcaster.schema";
static const char lc_meta_value[] = "2";     /* appliance/batch.py SCHEMA's; 2: message nullable */

struct lc_schema_block {
    struct ArrowSchema children[LC_NCOLS];
    struct ArrowSchema *child_ptrs[LC_NCOLS];
    char metadata[4 + 4 + sizeof(lc_meta_key) - 1 + 4 + sizeof(lc_meta_value) - 1];
};

static void lc_schema_child_release(struct ArrowSchema *s) { s->release = NULL; }

static void lc_schema_release(struct ArrowSchema *s)
{
    struct lc_schema_block *blk = s->private_data;
    for (int i = 0; i < LC_NCOLS; i++)
        if (blk->children[i].release)
            blk->children[i].release(&blk->children[i]);
    free(blk);
    s->release = NULL;
}

static void lc_put_i32(char **p, int32_t v)
{
    memcpy(*p, &v, 4);
    *p += 4;
}

static int lc_schema(struct ArrowSchema *out)
{
    struct lc_schema_block *blk = calloc(1, sizeof(*blk));
    if (!blk)
        return ENOMEM;
    char *m = blk->metadata;
    lc_put_i32(&m, 1);
    lc_put_i32(&m, (int32_t)(sizeof(lc_meta_key) - 1));
    memcpy(m, lc_meta_key, sizeof(lc_meta_key) - 1);
    m += sizeof(lc_meta_key) - 1;
    lc_put_i32(&m, (int32_t)(sizeof(lc_meta_value) - 1));
    memcpy(m, lc_meta_value, sizeof(lc_meta_value) - 1);
    for (int i = 0; i < LC_NCOLS; i++) {
        blk->children[i] = (struct ArrowSchema){
            .format = lc_format(lc_col_kind(i)),
            .name = lc_col_name(i),
            .flags = lc_col_nullable(i) ? ARROW_FLAG_NULLABLE : 0,
            .release = lc_schema_child_release,
        };
        blk->child_ptrs[i] = &blk->children[i];
    }
    *out = (struct ArrowSchema){
        .format = "+s",
        .name = "",
        .metadata = blk->metadata,
        .n_children = LC_NCOLS,
        .children = blk->child_ptrs,
        .release = lc_schema_release,
        .private_data = blk,
    };
    return 0;
}

/* ---- one batch as a struct array ---------------------------------------- */

struct lc_array_block {
    struct lc_ring_map *map;
    struct ArrowArray children[LC_NCOLS];
    struct ArrowArray *child_ptrs[LC_NCOLS];
    const void *buffers[LC_NCOLS][LC_MAX_BUFFERS];
    const void *struct_buffers[1];
};

static void lc_array_child_release(struct ArrowArray *a) { a->release = NULL; }

static void lc_array_release(struct ArrowArray *a)
{
    struct lc_array_block *blk = a->private_data;
    for (int i = 0; i < LC_NCOLS; i++)
        if (blk->children[i].release)
            blk->children[i].release(&blk->children[i]);
    lc_ring_map_put(blk->map);
    free(blk);
    a->release = NULL;
}

static int lc_array(struct lc_ring_map *map, struct lc_batch_hdr *b, struct ArrowArray *out)
{
    struct lc_array_block *blk = calloc(1, sizeof(*blk));
    if (!blk)
        return ENOMEM;
    const uint8_t *base = (const uint8_t *)b;
    int64_t n = b->count;
    for (int i = 0; i < LC_NCOLS; i++) {
        const struct lc_col_desc *c = &b->cols[i];
        const void **buf = blk->buffers[i];
        buf[0] = c->validity_off ? base + c->validity_off : NULL;
        buf[1] = base + c->values_off;
        int is_var = c->kind == LC_KIND_STR || c->kind == LC_KIND_BIN;
        if (is_var)
            buf[2] = base + c->data_off;
        blk->children[i] = (struct ArrowArray){
            .length = n,
            .null_count = c->validity_off ? -1 : 0,    /* -1: pyarrow counts when asked */
            .n_buffers = is_var ? 3 : 2,
            .buffers = buf,
            .release = lc_array_child_release,
        };
        blk->child_ptrs[i] = &blk->children[i];
    }
    blk->map = lc_ring_map_hold(map);
    *out = (struct ArrowArray){
        .length = n,
        .n_buffers = 1,
        .n_children = LC_NCOLS,
        .buffers = blk->struct_buffers,
        .children = blk->child_ptrs,
        .release = lc_array_release,
        .private_data = blk,
    };
    return 0;
}

/* ---- the stream ----------------------------------------------------------- */

struct lc_stream {
    struct lc_ring_map *map;      /* keeps the headers readable while the stream lives */
    uint32_t n, next;
    struct lc_batch_hdr *hdrs[];
};

static int lc_stream_schema(struct ArrowArrayStream *s, struct ArrowSchema *out) { return lc_schema(out); }

static int lc_stream_next(struct ArrowArrayStream *s, struct ArrowArray *out)
{
    struct lc_stream *st = s->private_data;
    if (st->next == st->n) {
        out->release = NULL;      /* end of stream */
        return 0;
    }
    return lc_array(st->map, st->hdrs[st->next++], out);
}

static const char *lc_stream_error(struct ArrowArrayStream *s) { return NULL; }

static void lc_stream_release(struct ArrowArrayStream *s)
{
    struct lc_stream *st = s->private_data;
    lc_ring_map_put(st->map);
    free(st);
    s->release = NULL;
}

int lc_ring_export(struct lc_ring *r, struct lc_batch_hdr **hdrs, uint32_t n, void *stream)
{
    if (!r || (!hdrs && n) || !stream)
        return -EINVAL;
    struct lc_stream *st = malloc(sizeof(*st) + (size_t)n * sizeof(st->hdrs[0]));
    if (!st)
        return -ENOMEM;
    st->map = lc_ring_map_get(r);
    st->n = n;
    st->next = 0;
    memcpy(st->hdrs, hdrs, (size_t)n * sizeof(st->hdrs[0]));
    *(struct ArrowArrayStream *)stream = (struct ArrowArrayStream){
        .get_schema = lc_stream_schema,
        .get_next = lc_stream_next,
        .get_last_error = lc_stream_error,
        .release = lc_stream_release,
        .private_data = st,
    };
    return 0;
}
