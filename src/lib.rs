//! ecs-bootstrap: from power-on to a registered ECS container instance, and CloudFormation told.
//!
//! The modules follow the boot sequence: [`identity`] (IMDS), [`metadata`] (the stack or a local
//! [`template`]), [`settings`] and [`init`] (what to do), [`plan`] (all of it, decided up
//! front), [`ecs_config`] and [`logs_config`] (files), [`services`], [`join`], [`signal`].
//! [`boot`] runs them in order; [`error`] is the one place failures become exit codes.

pub mod agent_keys;
pub mod aws;
pub mod boot;
pub mod cli;
pub mod deadline;
pub mod discover;
pub mod dropin;
pub mod ecs_config;
pub mod error;
pub mod events;
pub mod fs;
pub mod fuzzing;
pub mod handoff;
pub mod identity;
pub mod imds;
pub mod init;
pub mod init_cmd;
pub mod join;
pub mod logs_config;
pub mod metadata;
pub mod notify;
pub mod once;
pub mod pace;
pub mod plan;
pub mod redact;
pub mod services;
pub mod settings;
pub mod shown;
pub mod signal;
pub mod state;
pub mod template;
pub mod tls;
