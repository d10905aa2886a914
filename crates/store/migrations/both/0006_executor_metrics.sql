-- The Prometheus metrics each executor sent with its latest heartbeat (labelled with its name),
-- which the instance serves on /metrics while the executor is active.
ALTER TABLE executor_heartbeats ADD COLUMN metrics TEXT NOT NULL DEFAULT '';
