//! Redis Streams: the queues between tiers. Fed only by the outbox relay.
