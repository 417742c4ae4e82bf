//! Protobuf field tables of the kinds typed Go clients (`kubectl create namespace|configmap|
//! secret|service|deployment|job|cronjob|serviceaccount`) send as
//! `application/vnd.kubernetes.protobuf`. Field numbers follow the `protobuf:` struct tags of
//! the Kubernetes API types. A field missing here makes the decoder refuse the body (415) so
//! nothing is silently dropped; extend the tables to accept more.

/// The JSON shape of a field's value.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// `bytes`, base64 in JSON.
    Bytes,
    Msg(&'static [Field]),
    /// `map<string,string>`.
    StrMap,
    /// `map<string,bytes>` (secret data).
    BytesMap,
    /// `map<string,Quantity>` (resource lists).
    QtyMap,
    IntOrStr,
    Quantity,
    Time,
}

/// One field: number, JSON name, type, repeated, keep zero values (Go pointer fields).
#[derive(Debug, Clone, Copy)]
pub struct Field(pub u32, pub &'static str, pub Ty, pub bool, pub bool);

use Ty::*;

const fn f(n: u32, name: &'static str, ty: Ty) -> Field {
    Field(n, name, ty, false, false)
}
/// Repeated.
const fn r(n: u32, name: &'static str, ty: Ty) -> Field {
    Field(n, name, ty, true, false)
}
/// Optional pointer: a zero value is meaningful.
const fn p(n: u32, name: &'static str, ty: Ty) -> Field {
    Field(n, name, ty, false, true)
}

pub static TYPE_META: &[Field] = &[f(1, "apiVersion", Str), f(2, "kind", Str)];

static OWNER_REF: &[Field] = &[
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];

pub static OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    f(9, "deletionTimestamp", Time),
    f(10, "deletionGracePeriodSeconds", Int),
    f(11, "labels", StrMap),
    f(12, "annotations", StrMap),
    r(13, "ownerReferences", Msg(OWNER_REF)),
    r(14, "finalizers", Str),
];

static REQUIREMENT: &[Field] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
static LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", StrMap),
    r(2, "matchExpressions", Msg(REQUIREMENT)),
];

static CONTAINER_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "hostPort", Int),
    f(3, "containerPort", Int),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];
static ENV_VAR: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
static RESOURCES: &[Field] = &[f(1, "limits", QtyMap), f(2, "requests", QtyMap)];
static VOLUME_MOUNT: &[Field] = &[
    f(1, "name", Str),
    f(2, "readOnly", Bool),
    f(3, "mountPath", Str),
    f(4, "subPath", Str),
];
static CONTAINER: &[Field] = &[
    f(1, "name", Str),
    f(2, "image", Str),
    r(3, "command", Str),
    r(4, "args", Str),
    f(5, "workingDir", Str),
    r(6, "ports", Msg(CONTAINER_PORT)),
    r(7, "env", Msg(ENV_VAR)),
    f(8, "resources", Msg(RESOURCES)),
    r(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    f(20, "terminationMessagePolicy", Str),
];
static EMPTY_DIR: &[Field] = &[f(1, "medium", Str), p(2, "sizeLimit", Quantity)];
static VOLUME: &[Field] = &[f(1, "name", Str), f(2, "emptyDir", Msg(EMPTY_DIR))];
static LOCAL_REF: &[Field] = &[f(1, "name", Str)];
static POD_SPEC: &[Field] = &[
    r(1, "volumes", Msg(VOLUME)),
    r(2, "containers", Msg(CONTAINER)),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", Int),
    p(5, "activeDeadlineSeconds", Int),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", StrMap),
    f(8, "serviceAccountName", Str),
    f(9, "serviceAccount", Str),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    r(15, "imagePullSecrets", Msg(LOCAL_REF)),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    r(20, "initContainers", Msg(CONTAINER)),
    f(24, "priorityClassName", Str),
];
static POD_TEMPLATE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];

static NAMESPACE_SPEC: &[Field] = &[r(1, "finalizers", Str)];
static NAMESPACE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(NAMESPACE_SPEC)),
];
static CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", StrMap),
    f(3, "binaryData", BytesMap),
    p(4, "immutable", Bool),
];
static SECRET: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", BytesMap),
    f(3, "type", Str),
    f(4, "stringData", StrMap),
    p(5, "immutable", Bool),
];
static SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(3, "imagePullSecrets", Msg(LOCAL_REF)),
    p(4, "automountServiceAccountToken", Bool),
];
static SERVICE_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    f(3, "port", Int),
    f(4, "targetPort", IntOrStr),
    f(5, "nodePort", Int),
    p(6, "appProtocol", Str),
];
static SERVICE_SPEC: &[Field] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", StrMap),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    r(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
];
static SERVICE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(SERVICE_SPEC)),
];

static ROLLING_UPDATE: &[Field] = &[p(1, "maxUnavailable", IntOrStr), p(2, "maxSurge", IntOrStr)];
static DEPLOYMENT_STRATEGY: &[Field] = &[
    f(1, "type", Str),
    f(2, "rollingUpdate", Msg(ROLLING_UPDATE)),
];
static DEPLOYMENT_SPEC: &[Field] = &[
    p(1, "replicas", Int),
    f(2, "selector", Msg(LABEL_SELECTOR)),
    f(3, "template", Msg(POD_TEMPLATE)),
    f(4, "strategy", Msg(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", Int),
    p(6, "revisionHistoryLimit", Int),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", Int),
];
static DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(DEPLOYMENT_SPEC)),
];
static JOB_SPEC: &[Field] = &[
    p(1, "parallelism", Int),
    p(2, "completions", Int),
    p(3, "activeDeadlineSeconds", Int),
    f(4, "selector", Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Bool),
    f(6, "template", Msg(POD_TEMPLATE)),
    p(7, "backoffLimit", Int),
    p(8, "ttlSecondsAfterFinished", Int),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
];
static JOB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(JOB_SPEC)),
];
static JOB_TEMPLATE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(JOB_SPEC)),
];
static CRON_JOB_SPEC: &[Field] = &[
    f(1, "schedule", Str),
    p(2, "startingDeadlineSeconds", Int),
    f(3, "concurrencyPolicy", Str),
    p(4, "suspend", Bool),
    f(5, "jobTemplate", Msg(JOB_TEMPLATE)),
    p(6, "successfulJobsHistoryLimit", Int),
    p(7, "failedJobsHistoryLimit", Int),
    p(8, "timeZone", Str),
];
static CRON_JOB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(CRON_JOB_SPEC)),
];

/// The table of a top-level kind. Status fields are not accepted (they are never written
/// by a create through the main resource).
pub fn kind(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRON_JOB,
        _ => return None,
    })
}
