-- Input events may come as protobuf, JSON, structured CloudEvents or in the
-- Confluent wire format (issue 20): a dead letter records how it came and,
-- for a value of a JSON document, that value's JSON path, so an operator
-- sees which producer's mapping went wrong. NULL for dead letters written
-- before, and for faults that are not one value's.
ALTER TABLE dead_letter ADD COLUMN content_mode text, ADD COLUMN json_path text;
