//! `ecs-bootstrap hup`, the cfn-hup replacement (issue 15): reading cfn-hup's configuration
//! files ([`ini`], [`conf`]), deciding which hook fires ([`rules`]), remembering what each hook
//! last saw ([`store`]), the one AWS call ([`cfn`]), running an action ([`action`]), one poll
//! ([`poll`]), the zero-config mode on the instance's own launch resource ([`launch`]) and the
//! command with its loop ([`daemon`], [`stop`]). See docs/hup.md.

pub mod action;
pub mod cfn;
pub mod conf;
pub mod daemon;
pub mod ini;
pub mod launch;
pub mod poll;
pub mod rules;
pub mod stop;
pub mod store;
