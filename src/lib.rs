//! ecs-bootstrap: from power-on to a registered ECS container instance, and CloudFormation told.
//!
//! The layout follows the boot sequence: [`cli`] (the command line, `init` and the cfn-* drop-ins)
//! hands a run to [`boot`], whose steps run in order (identity, metadata, plan, Init, agent and
//! logs config, services, join, signal); [`init`] is the `AWS::CloudFormation::Init` engine and
//! [`template`] the local-template reader; [`config`] holds the `ecs-bootstrap:` block and the
//! files made from it; [`aws`] the SDK clients, IMDS and TLS; [`sys`] the host seam (files,
//! processes, systemctl, retries, sd_notify, redaction). [`input`] is the one reader of those
//! blocks (typed values, key paths in errors); [`hup`] is cfn-hup; [`error`] is the one place
//! failures become exit codes.

pub mod aws;
pub mod boot;
pub mod cli;
pub(crate) mod config;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod hup;
pub(crate) mod init;
pub(crate) mod input;
pub(crate) mod sys;
pub(crate) mod template;
#[cfg(test)]
pub(crate) mod test_http;
