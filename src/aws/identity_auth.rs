//! CloudFormation's identity signing, as the cfn helpers do it: with no credentials given,
//! cfn-init, cfn-signal, cfn-get-metadata and cfn-hup sign with the instance identity instead
//! of SigV4 (`cfnbootstrap/cfn_client.py:65-81@25fabe91`, `using_instance_identity`), in the
//! header `Authorization: CFN_V1 <base64(identity document)>:<identity signature>`
//! (`cfnbootstrap/aws_client.py:50-65@25fabe91`, `CFNSigner`). CloudFormation then checks that
//! the instance belongs to the stack and limits the call to it, so the instance role needs no
//! `cloudformation:*` permission — which is why a classic stack's role has none.
//!
//! Built as an SDK auth scheme (an identity resolver and a signer) chosen for every operation
//! of the client: retries, throttling, timeouts, proxies and endpoint overrides are the SDK's
//! own, unchanged; only the `Authorization` header differs.

use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::{
    AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId, AuthSchemeOption, AuthSchemeOptionsFuture,
    Sign,
};
use aws_smithy_runtime_api::client::identity::{
    Identity, IdentityCacheLocation, IdentityFuture, ResolveIdentity, SharedIdentityResolver,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::OnceCell;

use crate::boot::identity::Proof;

pub const SCHEME_ID: AuthSchemeId = AuthSchemeId::new("ecs-bootstrap#cfn_v1");

/// Whether this process signs CloudFormation calls with the identity (each command makes its
/// CloudFormation clients one way): an authorisation error then means CloudFormation refused
/// the identity, not that a role lacks an action.
static IN_USE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn mark_in_use() {
    IN_USE.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn in_use() -> bool {
    IN_USE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where the proof comes from: already read (a run reads it with the identity, so its FAILURE
/// signal needs nothing more from IMDS), or from IMDS on first use (the drop-ins).
#[derive(Debug, Clone)]
pub enum ProofSource {
    Known(Proof),
    Imds,
}

/// Makes `builder`'s client sign every operation with the instance identity.
pub fn apply(
    builder: aws_sdk_cloudformation::config::Builder,
    source: ProofSource,
) -> aws_sdk_cloudformation::config::Builder {
    builder
        .push_auth_scheme(CfnV1Scheme::new(source))
        .auth_scheme_resolver(OnlyCfnV1)
}

#[derive(Debug)]
struct OnlyCfnV1;

impl aws_sdk_cloudformation::config::auth::ResolveAuthScheme for OnlyCfnV1 {
    fn resolve_auth_scheme<'a>(
        &'a self,
        _params: &'a aws_sdk_cloudformation::config::auth::Params,
        _cfg: &'a ConfigBag,
        _runtime_components: &'a RuntimeComponents,
    ) -> AuthSchemeOptionsFuture<'a> {
        AuthSchemeOptionsFuture::ready(Ok(vec![AuthSchemeOption::from(SCHEME_ID)]))
    }
}

#[derive(Debug)]
struct CfnV1Scheme {
    resolver: SharedIdentityResolver,
    signer: CfnV1Signer,
}

impl CfnV1Scheme {
    fn new(source: ProofSource) -> Self {
        let cell = match source {
            ProofSource::Known(p) => OnceCell::new_with(Some(p)),
            ProofSource::Imds => OnceCell::new(),
        };
        CfnV1Scheme {
            resolver: SharedIdentityResolver::new(ProofResolver {
                proof: Arc::new(cell),
            }),
            signer: CfnV1Signer,
        }
    }
}

impl AuthScheme for CfnV1Scheme {
    fn scheme_id(&self) -> AuthSchemeId {
        SCHEME_ID
    }

    fn identity_resolver(&self, _: &dyn GetIdentityResolver) -> Option<SharedIdentityResolver> {
        Some(self.resolver.clone())
    }

    fn signer(&self) -> &dyn Sign {
        &self.signer
    }
}

/// Reads the proof once per client and keeps it (it does not change while the instance lives).
#[derive(Debug)]
struct ProofResolver {
    proof: Arc<OnceCell<Proof>>,
}

impl ResolveIdentity for ProofResolver {
    fn resolve_identity<'a>(
        &'a self,
        _runtime_components: &'a RuntimeComponents,
        _config_bag: &'a ConfigBag,
    ) -> IdentityFuture<'a> {
        IdentityFuture::new(async move {
            let proof = self
                .proof
                .get_or_try_init(|| async {
                    Proof::from_imds(crate::aws::imds::ImdsOptions::default()).await
                })
                .await
                .map_err(|e| -> BoxError {
                    format!("the instance identity for CloudFormation's identity signing: {e}")
                        .into()
                })?;
            Ok(Identity::new(proof.clone(), None))
        })
    }

    fn cache_location(&self) -> IdentityCacheLocation {
        IdentityCacheLocation::IdentityResolver
    }
}

#[derive(Debug)]
struct CfnV1Signer;

impl Sign for CfnV1Signer {
    fn sign_http_request(
        &self,
        request: &mut HttpRequest,
        identity: &Identity,
        _endpoint_config: AuthSchemeEndpointConfig<'_>,
        _runtime_components: &RuntimeComponents,
        _config_bag: &ConfigBag,
    ) -> Result<(), BoxError> {
        let proof = identity
            .data::<Proof>()
            .ok_or("CFN_V1 signing needs the instance identity document")?;
        request
            .headers_mut()
            .insert("authorization", proof.authorization());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::{Response, Server};

    /// The whole client path: the request that leaves the SDK carries the CFN_V1 header and no
    /// SigV4 trace, and goes to the configured endpoint.
    #[tokio::test]
    async fn requests_carry_the_identity_and_no_sigv4() {
        let server = Server::answering(|_| {
            Response::new(
                400,
                "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>m</Message></Error></ErrorResponse>",
            )
        });
        let proof = Proof {
            document: "{\"instanceId\":\"i-1\"}".into(),
            signature: "c2ln\nbmF0dXJl".into(),
        };
        let conf = aws_sdk_cloudformation::config::Builder::new()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new("eu-west-1"))
            .endpoint_url(&server.url)
            .retry_config(aws_sdk_cloudformation::config::retry::RetryConfig::disabled());
        let client = aws_sdk_cloudformation::Client::from_conf(
            apply(conf, ProofSource::Known(proof.clone())).build(),
        );
        let err = client
            .describe_stack_resource()
            .stack_name("s")
            .logical_resource_id("r")
            .send()
            .await
            .unwrap_err();
        assert!(crate::aws::describe_sdk_error(&err).contains("ValidationError"));
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "retries are disabled");
        let req = &requests[0];
        let auth = proof.authorization();
        assert_eq!(req.header("authorization"), Some(auth.as_str()));
        assert!(auth.ends_with(":c2lnbmF0dXJl"));
        let head = format!("{:?}", req.headers).to_ascii_lowercase();
        assert!(!head.contains("aws4-hmac-sha256"), "{head}");
        assert!(req.header("x-amz-security-token").is_none(), "{head}");
    }
}
