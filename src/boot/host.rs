//! What a run talks to outside its own process: the processes it starts, IMDS, the AWS
//! endpoints and the credentials of its SigV4 calls. [`Host::real`] is the instance's, chosen
//! in one place (`boot::run`, `boot::resume`); a test passes its own (a recording runner, local
//! stubs on 127.0.0.1) and drives the whole boot sequence in-process (src/boot/tests.rs).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::aws::imds::{self, Imds};
use crate::aws::{CfnAuth, Clients, Endpoints};
use crate::sys::process::Runner;

pub(crate) struct Host {
    pub runner: Arc<dyn Runner>,
    /// Every IMDS read of the run: identity, proof, metadata tags.
    pub imds: &'static Imds,
    /// `Endpoints::default()`: the SDK's choice (`AWS_ENDPOINT_URL*`, else regional).
    pub endpoints: Endpoints,
    /// The credentials of the ECS and Auto Scaling calls (CloudFormation is identity-signed, or
    /// `--role` names its own). `None`: the run chain ([`crate::aws::credentials::run_chain`]:
    /// environment, profile, instance role through the process's IMDS client).
    pub credentials: Option<SharedCredentialsProvider>,
}

impl Host {
    /// The instance: real processes, the process's one IMDS client (one token per process), the
    /// SDK's endpoints and the run's credentials chain.
    pub fn real() -> Host {
        Host {
            runner: crate::sys::process::real(),
            imds: imds::shared(),
            endpoints: Endpoints::default(),
            credentials: None,
        }
    }

    /// [`crate::aws::sdk_config_within`], with this host's credentials when it names some.
    pub async fn sdk_config(
        &self,
        region: &str,
        deadline: Duration,
    ) -> Result<SdkConfig, crate::error::Error> {
        let sdk = crate::aws::sdk_config_within(region, deadline).await?;
        Ok(match &self.credentials {
            Some(c) => sdk.into_builder().credentials_provider(c.clone()).build(),
            None => sdk,
        })
    }

    /// The run's clients, at this host's endpoints.
    pub fn clients(&self, sdk: SdkConfig, auth: CfnAuth) -> Clients {
        Clients::new(sdk, auth, &self.endpoints, None)
    }
}
