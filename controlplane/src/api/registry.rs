//! The table of served resources: for each kind its group, version, names, scope, verbs and
//! subresources, plus the typed (k8s-openapi) round trip used to decode and normalise bodies.

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, discovery, networking, policy, rbac, scheduling,
    storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use serde_json::Value;

use super::custom::CustomInfo;

/// Subresources the API server implements generically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `.../status`: reads the object, writes only its `status`.
    Status,
    /// `.../scale`: an `autoscaling/v1` Scale view of `spec.replicas`.
    Scale,
    /// `pods/binding`: sets `spec.nodeName`.
    Binding,
    /// `namespaces/finalize`: writes only `spec.finalizers`.
    Finalize,
    /// `pods/eviction`: a delete that honours PodDisruptionBudgets.
    Eviction,
    /// `pods/ephemeralcontainers`: reads the pod, writes only `spec.ephemeralContainers`
    /// (`kubectl debug`).
    EphemeralContainers,
    /// `serviceaccounts/token`: issues a TokenRequest (`kubectl create token`).
    Token,
}

impl Subresource {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "status" => Self::Status,
            "scale" => Self::Scale,
            "binding" => Self::Binding,
            "finalize" => Self::Finalize,
            "eviction" => Self::Eviction,
            "ephemeralcontainers" => Self::EphemeralContainers,
            "token" => Self::Token,
            _ => return None,
        })
    }

    /// Whether HTTP `method` is a verb of this subresource (see discovery).
    pub fn allows(self, method: &str) -> bool {
        match self {
            Self::Status | Self::Scale | Self::EphemeralContainers => {
                matches!(method, "GET" | "PUT" | "PATCH")
            }
            Self::Binding | Self::Eviction | Self::Token => method == "POST",
            Self::Finalize => method == "PUT",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Finalize => "finalize",
            Self::Eviction => "eviction",
            Self::EphemeralContainers => "ephemeralcontainers",
            Self::Token => "token",
        }
    }
}

/// Decode a JSON object as the kind's k8s-openapi type and encode it again: rejects bodies of
/// the wrong shape and drops fields the type does not know.
pub type RoundTrip = fn(Value) -> Result<Value, serde_json::Error>;

/// Add the kind's JSON schema (and everything it references) to the generator's definitions.
pub type SchemaFn = fn(&mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema;

fn schema_of<T: schemars::JsonSchema>(
    gen: &mut schemars::gen::SchemaGenerator,
) -> schemars::schema::Schema {
    gen.subschema_for::<T>()
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: Value,
) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(v)?;
    serde_json::to_value(typed)
}

/// One served resource.
#[derive(Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub subresources: &'static [Subresource],
    pub categories: &'static [&'static str],
    pub round_trip: RoundTrip,
    pub schema: SchemaFn,
    /// Set for the kinds of CustomResourceDefinitions (see [`crate::api::custom`]).
    pub custom: Option<&'static CustomInfo>,
}

pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList`, or a CRD's `names.listKind`.
    pub fn list_kind(&self) -> String {
        match self.custom {
            Some(c) if !c.list_kind.is_empty() => c.list_kind.clone(),
            _ => format!("{}List", self.kind),
        }
    }

    /// The kind whose built-in hooks (defaults, validation, allocation, printing) apply:
    /// empty for custom resources, whose kind may well be named `Service` or `Pod`.
    pub fn builtin_kind(&self) -> &'static str {
        if self.custom.is_some() {
            ""
        } else {
            self.kind
        }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// `pods` or `deployments.apps` (as Kubernetes names resources in messages).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

use Subresource::{Binding, EphemeralContainers, Eviction, Finalize, Scale, Status, Token};

macro_rules! res {
    ($ty:ty, $plural:literal, $singular:literal, [$($short:literal),*], $ns:literal,
     [$($sub:ident),*], [$($cat:literal),*]) => {
        ResourceInfo {
            group: <$ty as k8s_openapi::Resource>::GROUP,
            version: <$ty as k8s_openapi::Resource>::VERSION,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $ns,
            subresources: &[$($sub),*],
            categories: &[$($cat),*],
            round_trip: round_trip::<$ty>,
            schema: schema_of::<$ty>,
            custom: None,
        }
    };
}

/// Every served resource. Order is discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    res!(
        core::v1::Namespace,
        "namespaces",
        "namespace",
        ["ns"],
        false,
        [Status, Finalize],
        []
    ),
    res!(
        core::v1::Pod,
        "pods",
        "pod",
        ["po"],
        true,
        [Status, Binding, Eviction, EphemeralContainers],
        ["all"]
    ),
    res!(
        core::v1::Service,
        "services",
        "service",
        ["svc"],
        true,
        [Status],
        ["all"]
    ),
    res!(
        core::v1::Endpoints,
        "endpoints",
        "endpoints",
        ["ep"],
        true,
        [],
        []
    ),
    res!(
        core::v1::ConfigMap,
        "configmaps",
        "configmap",
        ["cm"],
        true,
        [],
        []
    ),
    res!(core::v1::Secret, "secrets", "secret", [], true, [], []),
    res!(core::v1::Node, "nodes", "node", ["no"], false, [Status], []),
    res!(core::v1::Event, "events", "event", ["ev"], true, [], []),
    res!(
        core::v1::ReplicationController,
        "replicationcontrollers",
        "replicationcontroller",
        ["rc"],
        true,
        [Status, Scale],
        ["all"]
    ),
    res!(
        core::v1::ComponentStatus,
        "componentstatuses",
        "componentstatus",
        ["cs"],
        false,
        [],
        []
    ),
    res!(
        core::v1::ServiceAccount,
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true,
        [Token],
        []
    ),
    res!(
        discovery::v1::EndpointSlice,
        "endpointslices",
        "endpointslice",
        [],
        true,
        [],
        []
    ),
    res!(coordination::v1::Lease, "leases", "lease", [], true, [], []),
    res!(
        apps::v1::Deployment,
        "deployments",
        "deployment",
        ["deploy"],
        true,
        [Status, Scale],
        ["all"]
    ),
    res!(
        apps::v1::ReplicaSet,
        "replicasets",
        "replicaset",
        ["rs"],
        true,
        [Status, Scale],
        ["all"]
    ),
    res!(
        apps::v1::DaemonSet,
        "daemonsets",
        "daemonset",
        ["ds"],
        true,
        [Status],
        ["all"]
    ),
    res!(
        apps::v1::StatefulSet,
        "statefulsets",
        "statefulset",
        ["sts"],
        true,
        [Status, Scale],
        ["all"]
    ),
    res!(
        apps::v1::ControllerRevision,
        "controllerrevisions",
        "controllerrevision",
        [],
        true,
        [],
        []
    ),
    res!(batch::v1::Job, "jobs", "job", [], true, [Status], ["all"]),
    res!(
        batch::v1::CronJob,
        "cronjobs",
        "cronjob",
        ["cj"],
        true,
        [Status],
        ["all"]
    ),
    // Stored and served so that manifests carrying them apply as they do on
    // Kubernetes; nothing acts on them yet (no authorization, admission
    // quotas, volume provisioning, ingress or network policy enforcement,
    // disruption budgets or autoscaling): ARCHITECTURE.md lists them.
    res!(
        core::v1::PersistentVolumeClaim,
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true,
        [Status],
        []
    ),
    res!(
        core::v1::PersistentVolume,
        "persistentvolumes",
        "persistentvolume",
        ["pv"],
        false,
        [Status],
        []
    ),
    res!(
        core::v1::LimitRange,
        "limitranges",
        "limitrange",
        ["limits"],
        true,
        [],
        []
    ),
    res!(
        core::v1::ResourceQuota,
        "resourcequotas",
        "resourcequota",
        ["quota"],
        true,
        [Status],
        []
    ),
    res!(rbac::v1::Role, "roles", "role", [], true, [], []),
    res!(
        rbac::v1::RoleBinding,
        "rolebindings",
        "rolebinding",
        [],
        true,
        [],
        []
    ),
    res!(
        rbac::v1::ClusterRole,
        "clusterroles",
        "clusterrole",
        [],
        false,
        [],
        []
    ),
    res!(
        rbac::v1::ClusterRoleBinding,
        "clusterrolebindings",
        "clusterrolebinding",
        [],
        false,
        [],
        []
    ),
    res!(
        networking::v1::Ingress,
        "ingresses",
        "ingress",
        ["ing"],
        true,
        [Status],
        []
    ),
    res!(
        networking::v1::IngressClass,
        "ingressclasses",
        "ingressclass",
        [],
        false,
        [],
        []
    ),
    res!(
        networking::v1::NetworkPolicy,
        "networkpolicies",
        "networkpolicy",
        ["netpol"],
        true,
        [],
        []
    ),
    res!(
        policy::v1::PodDisruptionBudget,
        "poddisruptionbudgets",
        "poddisruptionbudget",
        ["pdb"],
        true,
        [Status],
        []
    ),
    res!(
        storage::v1::StorageClass,
        "storageclasses",
        "storageclass",
        ["sc"],
        false,
        [],
        []
    ),
    res!(
        scheduling::v1::PriorityClass,
        "priorityclasses",
        "priorityclass",
        ["pc"],
        false,
        [],
        []
    ),
    res!(
        apiextensions::v1::CustomResourceDefinition,
        "customresourcedefinitions",
        "customresourcedefinition",
        ["crd", "crds"],
        false,
        [Status],
        ["api-extensions"]
    ),
    res!(
        autoscaling::v2::HorizontalPodAutoscaler,
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ["hpa"],
        true,
        [Status],
        ["all"]
    ),
];

/// The resource `plural` served at `group`/`version`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of an `apiVersion` + `kind` pair.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// Group versions served, in discovery order: `("", "v1")` first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        assert_eq!(
            lookup("apps", "v1", "deployments").unwrap().kind,
            "Deployment"
        );
        assert_eq!(by_kind("v1", "Pod").unwrap().plural, "pods");
        assert_eq!(group_versions()[0], ("", "v1"));
        for r in RESOURCES {
            let v = serde_json::json!({"apiVersion": r.api_version(), "kind": r.kind});
            (r.round_trip)(v).unwrap_or_else(|e| panic!("{}: {e}", r.kind));
        }
    }
}
