-- The saga step (if any) waiting for a volume's create, resize or delete to finish on its agent.
ALTER TABLE __SCHEMA__.volumes ADD COLUMN IF NOT EXISTS saga_request jsonb;
