#ifndef KA_PB_JSON_H
#define KA_PB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* The other direction of ka_json_pb.h, for producers of our own (kagen
 * --format json|cloudevents) and for tests: a protobuf-c message as a
 * proto3 JSON mapping document, driven by its descriptor, as the official
 * runtimes print it (json_format.MessageToJson): lowerCamelCase names,
 * fields at their default left out (a oneof member or a proto3 `optional`
 * that is set is always printed), enums by value name (an unknown number
 * as the number), 64-bit integers as decimal strings, bytes as standard
 * base64, repeated fields as arrays, nested messages as objects. Maps and
 * the well-known types are not written: no input schema of ours has them. */

/* A new JSON object (json_decref it), or NULL when out of memory. */
json_t *ka_pb_to_json(const ProtobufCMessage *m);

#endif
