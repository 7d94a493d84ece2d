-- Copies through a staging store that the service handed to an agent for a saga: who to answer (the saga's step)
-- once the agent's answer (caused by `agent_message_id`) arrives.
CREATE TABLE __SCHEMA__.staging_relays (
    agent_message_id uuid PRIMARY KEY,
    request jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
