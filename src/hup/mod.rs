//! `ecs-bootstrap hup`, the cfn-hup replacement (issue 15): reading cfn-hup's configuration
//! files ([`ini`], [`conf`]), deciding which hook fires ([`rules`]), remembering what each hook
//! last saw ([`store`]), the one AWS call ([`cfn`]), running an action ([`action`]), one poll
//! ([`poll`]), the zero-config mode on the instance's own launch resource ([`launch`]) and the
//! command with its loop ([`daemon`], [`schedule`], [`stop`]). See docs/hup.md.

pub(crate) mod action;
pub(crate) mod cfn;
pub(crate) mod conf;
pub(crate) mod daemon;
pub(crate) mod ini;
pub(crate) mod launch;
pub(crate) mod poll;
pub(crate) mod rules;
pub mod schedule;
pub(crate) mod stop;
pub(crate) mod store;
