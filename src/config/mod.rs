//! What the instance is configured with: the `ecs-bootstrap:` block ([`settings`]), the ECS
//! agent's keys ([`agent_keys`]), and the two files written from them ([`ecs_config`],
//! [`logs_config`]).

pub mod agent_keys;
pub mod ecs_config;
pub mod logs_config;
pub mod settings;
