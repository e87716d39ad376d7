//! `ecs-bootstrap hup`, the cfn-hup replacement (issue 15): the pieces that need no AWS call and
//! no process: reading cfn-hup's configuration files ([`ini`], [`conf`]), deciding which hook
//! fires ([`rules`]) and remembering what each hook last saw ([`store`]). See docs/hup.md.

pub mod conf;
pub mod ini;
pub mod rules;
pub mod store;
