#ifndef KA_RFC3339_H
#define KA_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* Times as the proto3 JSON mapping (google.protobuf.Timestamp) and
 * CloudEvents (the time attribute) write them.
 *
 * RFC 3339 ("2026-11-18T09:30:00.125+08:00", 'T'/'t'/' ' between date and
 * time, 'Z'/'z' or an offset, 0 to 9 fraction digits, years 0001-9999, no
 * leap second) as seconds and nanoseconds since the epoch, UTC. Returns 0,
 * or -1 when s[0..len) is not such a time. */
int ka_rfc3339_parse(const char *s, size_t len, int64_t *seconds, int32_t *nanos);

#endif
