/* decode_syslog.h - the syslog layer, called by the frame decoder once the
 * UDP payload is known and the row is begun. */
#ifndef LC_DECODE_SYSLOG_H
#define LC_DECODE_SYSLOG_H

#include <stdint.h>
#include "../lc_batch.h"
#include "../lc_decode.h"
#include "senders.h"

/* Index into lc_decoder.format_counts, and the text written to `format`. */
enum lc_format { LC_FMT_RFC5424 = 0, LC_FMT_RFC3164 = 1, LC_FMT_RAW = 2 };

/* Decode the UDP payload p[0..n) into row `row` of `b`: writes facility,
 * severity, format, timestamp, hostname, app_name, procid, msgid,
 * structured_data, message and raw (the whole payload, untouched), and
 * counts the format and severity in d. With d->senders, sets k's app and,
 * when a sequence rule finds one, its sequence number. Returns the LC_F_* flags it found;
 * the caller ORs them with the network-layer flags and writes `flags`.
 * Reads only p[0..n); writes at most lc_batch_room()'s bounds. */
uint16_t lc_syslog_decode(struct lc_decoder *d, struct lc_batch_hdr *b, uint32_t row,
                          const uint8_t *p, uint32_t n, int64_t rx_ns, struct lc_sender_key *k);

#endif
