//! Protobuf field tables of the kinds typed Go clients (`kubectl create namespace|configmap|
//! secret|service|deployment|job|cronjob|serviceaccount|quota|role|rolebinding|clusterrole|
//! clusterrolebinding|poddisruptionbudget|priorityclass|token`, `create job --from=cronjob`,
//! `autoscale`, `debug node/…`) send as
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
    /// An embedded struct (`protobuf:"bytes,N,opt,name=x"` with `json:",inline"`): its
    /// fields are merged into the parent object.
    Inline(&'static [Field]),
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
static OBJECT_FIELD_SELECTOR: &[Field] = &[f(1, "apiVersion", Str), f(2, "fieldPath", Str)];
static RESOURCE_FIELD_SELECTOR: &[Field] = &[
    f(1, "containerName", Str),
    f(2, "resource", Str),
    p(3, "divisor", Quantity),
];
/// `ConfigMapKeySelector` and `SecretKeySelector`.
static KEY_SELECTOR: &[Field] = &[
    f(1, "localObjectReference", Inline(LOCAL_REF)),
    f(2, "key", Str),
    p(3, "optional", Bool),
];
static ENV_VAR_SOURCE: &[Field] = &[
    f(1, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    f(2, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    f(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    f(4, "secretKeyRef", Msg(KEY_SELECTOR)),
];
static ENV_VAR: &[Field] = &[
    f(1, "name", Str),
    f(2, "value", Str),
    f(3, "valueFrom", Msg(ENV_VAR_SOURCE)),
];
/// `ConfigMapEnvSource` and `SecretEnvSource`.
static ENV_SOURCE: &[Field] = &[
    f(1, "localObjectReference", Inline(LOCAL_REF)),
    p(2, "optional", Bool),
];
static ENV_FROM: &[Field] = &[
    f(1, "prefix", Str),
    f(2, "configMapRef", Msg(ENV_SOURCE)),
    f(3, "secretRef", Msg(ENV_SOURCE)),
];
static EXEC_ACTION: &[Field] = &[r(1, "command", Str)];
static HTTP_HEADER: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
static HTTP_GET: &[Field] = &[
    f(1, "path", Str),
    f(2, "port", IntOrStr),
    f(3, "host", Str),
    f(4, "scheme", Str),
    r(5, "httpHeaders", Msg(HTTP_HEADER)),
];
static TCP_SOCKET: &[Field] = &[f(1, "port", IntOrStr), f(2, "host", Str)];
static GRPC_ACTION: &[Field] = &[f(1, "port", Int), p(2, "service", Str)];
static PROBE_HANDLER: &[Field] = &[
    f(1, "exec", Msg(EXEC_ACTION)),
    f(2, "httpGet", Msg(HTTP_GET)),
    f(3, "tcpSocket", Msg(TCP_SOCKET)),
    f(4, "grpc", Msg(GRPC_ACTION)),
];
static PROBE: &[Field] = &[
    f(1, "handler", Inline(PROBE_HANDLER)),
    f(2, "initialDelaySeconds", Int),
    f(3, "timeoutSeconds", Int),
    f(4, "periodSeconds", Int),
    f(5, "successThreshold", Int),
    f(6, "failureThreshold", Int),
    p(7, "terminationGracePeriodSeconds", Int),
];
static SLEEP_ACTION: &[Field] = &[f(1, "seconds", Int)];
static LIFECYCLE_HANDLER: &[Field] = &[
    f(1, "exec", Msg(EXEC_ACTION)),
    f(2, "httpGet", Msg(HTTP_GET)),
    f(3, "tcpSocket", Msg(TCP_SOCKET)),
    f(4, "sleep", Msg(SLEEP_ACTION)),
];
static LIFECYCLE: &[Field] = &[
    f(1, "postStart", Msg(LIFECYCLE_HANDLER)),
    f(2, "preStop", Msg(LIFECYCLE_HANDLER)),
];
static CAPABILITIES: &[Field] = &[r(1, "add", Str), r(2, "drop", Str)];
static SECCOMP_PROFILE: &[Field] = &[f(1, "type", Str), p(2, "localhostProfile", Str)];
static CONTAINER_SECURITY_CONTEXT: &[Field] = &[
    f(1, "capabilities", Msg(CAPABILITIES)),
    p(2, "privileged", Bool),
    p(4, "runAsUser", Int),
    p(5, "runAsNonRoot", Bool),
    p(6, "readOnlyRootFilesystem", Bool),
    p(7, "allowPrivilegeEscalation", Bool),
    p(8, "runAsGroup", Int),
    f(11, "seccompProfile", Msg(SECCOMP_PROFILE)),
];
static SYSCTL: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
static POD_SECURITY_CONTEXT: &[Field] = &[
    p(2, "runAsUser", Int),
    p(3, "runAsNonRoot", Bool),
    r(4, "supplementalGroups", Int),
    p(5, "fsGroup", Int),
    p(6, "runAsGroup", Int),
    r(7, "sysctls", Msg(SYSCTL)),
    p(9, "fsGroupChangePolicy", Str),
    f(10, "seccompProfile", Msg(SECCOMP_PROFILE)),
];
static TOLERATION: &[Field] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    p(5, "tolerationSeconds", Int),
];
static POD_OS: &[Field] = &[f(1, "name", Str)];
static HOST_ALIAS: &[Field] = &[f(1, "ip", Str), r(2, "hostnames", Str)];
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
    f(10, "livenessProbe", Msg(PROBE)),
    f(11, "readinessProbe", Msg(PROBE)),
    f(12, "lifecycle", Msg(LIFECYCLE)),
    f(15, "securityContext", Msg(CONTAINER_SECURITY_CONTEXT)),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    r(19, "envFrom", Msg(ENV_FROM)),
    f(20, "terminationMessagePolicy", Str),
    f(22, "startupProbe", Msg(PROBE)),
];
static EMPTY_DIR: &[Field] = &[f(1, "medium", Str), p(2, "sizeLimit", Quantity)];
static HOST_PATH: &[Field] = &[f(1, "path", Str), p(2, "type", Str)];
static KEY_TO_PATH: &[Field] = &[f(1, "key", Str), f(2, "path", Str), p(3, "mode", Int)];
static SECRET_VOLUME: &[Field] = &[
    f(1, "secretName", Str),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", Int),
    p(4, "optional", Bool),
];
static CONFIG_MAP_VOLUME: &[Field] = &[
    f(1, "localObjectReference", Inline(LOCAL_REF)),
    r(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", Int),
    p(4, "optional", Bool),
];
static PVC_VOLUME: &[Field] = &[f(1, "claimName", Str), f(2, "readOnly", Bool)];
static DOWNWARD_API_FILE: &[Field] = &[
    f(1, "path", Str),
    f(2, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    f(3, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    p(4, "mode", Int),
];
static DOWNWARD_API_VOLUME: &[Field] = &[
    r(1, "items", Msg(DOWNWARD_API_FILE)),
    p(2, "defaultMode", Int),
];
static VOLUME_SOURCE: &[Field] = &[
    f(1, "hostPath", Msg(HOST_PATH)),
    f(2, "emptyDir", Msg(EMPTY_DIR)),
    f(6, "secret", Msg(SECRET_VOLUME)),
    f(10, "persistentVolumeClaim", Msg(PVC_VOLUME)),
    f(16, "downwardAPI", Msg(DOWNWARD_API_VOLUME)),
    f(19, "configMap", Msg(CONFIG_MAP_VOLUME)),
];
static VOLUME: &[Field] = &[
    f(1, "name", Str),
    f(2, "volumeSource", Inline(VOLUME_SOURCE)),
];
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
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    f(14, "securityContext", Msg(POD_SECURITY_CONTEXT)),
    r(15, "imagePullSecrets", Msg(LOCAL_REF)),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    r(20, "initContainers", Msg(CONTAINER)),
    p(21, "automountServiceAccountToken", Bool),
    r(22, "tolerations", Msg(TOLERATION)),
    r(23, "hostAliases", Msg(HOST_ALIAS)),
    f(24, "priorityClassName", Str),
    p(25, "priority", Int),
    p(27, "shareProcessNamespace", Bool),
    p(29, "runtimeClassName", Str),
    p(30, "enableServiceLinks", Bool),
    p(31, "preemptionPolicy", Str),
    p(35, "setHostnameAsFQDN", Bool),
    f(36, "os", Msg(POD_OS)),
    p(37, "hostUsers", Bool),
];
static POD_TEMPLATE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(POD_SPEC)),
];

// v1 Pod (`kubectl debug node/…` and `--copy-to` create pods with the typed client).
static POD: &[Field] = &[
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

static POLICY_RULE: &[Field] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];
static ROLE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
];
static AGGREGATION_RULE: &[Field] = &[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))];
static CLUSTER_ROLE: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
    f(3, "aggregationRule", Msg(AGGREGATION_RULE)),
];
static SUBJECT: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiGroup", Str),
    f(3, "name", Str),
    f(4, "namespace", Str),
];
static ROLE_REF: &[Field] = &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)];
static ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "subjects", Msg(SUBJECT)),
    f(3, "roleRef", Msg(ROLE_REF)),
];
static SCOPED_REQUIREMENT: &[Field] = &[
    f(1, "scopeName", Str),
    f(2, "operator", Str),
    r(3, "values", Str),
];
static SCOPE_SELECTOR: &[Field] = &[r(1, "matchExpressions", Msg(SCOPED_REQUIREMENT))];
static RESOURCE_QUOTA_SPEC: &[Field] = &[
    f(1, "hard", QtyMap),
    r(2, "scopes", Str),
    f(3, "scopeSelector", Msg(SCOPE_SELECTOR)),
];
static RESOURCE_QUOTA: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(RESOURCE_QUOTA_SPEC)),
];
static PDB_SPEC: &[Field] = &[
    p(1, "minAvailable", IntOrStr),
    f(2, "selector", Msg(LABEL_SELECTOR)),
    p(3, "maxUnavailable", IntOrStr),
    p(4, "unhealthyPodEvictionPolicy", Str),
];
static PDB: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(PDB_SPEC)),
];
static PRIORITY_CLASS: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "value", Int),
    f(3, "globalDefault", Bool),
    f(4, "description", Str),
    p(5, "preemptionPolicy", Str),
];

static PRECONDITIONS: &[Field] = &[p(1, "uid", Str), p(2, "resourceVersion", Str)];
static DELETE_OPTIONS: &[Field] = &[
    p(1, "gracePeriodSeconds", Int),
    f(2, "preconditions", Msg(PRECONDITIONS)),
    p(3, "orphanDependents", Bool),
    p(4, "propagationPolicy", Str),
    r(5, "dryRun", Str),
];
static EVICTION: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "deleteOptions", Msg(DELETE_OPTIONS)),
];

// authentication/v1 TokenRequest (`kubectl create token`).
static BOUND_OBJECT_REF: &[Field] = &[
    f(1, "kind", Str),
    f(2, "apiVersion", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
];
static TOKEN_REQUEST_SPEC: &[Field] = &[
    r(1, "audiences", Str),
    f(3, "boundObjectRef", Msg(BOUND_OBJECT_REF)),
    p(4, "expirationSeconds", Int),
];
static TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(TOKEN_REQUEST_SPEC)),
];

static CROSS_VERSION_REF: &[Field] = &[
    f(1, "kind", Str),
    f(2, "name", Str),
    f(3, "apiVersion", Str),
];
static HPA_V1_SPEC: &[Field] = &[
    f(1, "scaleTargetRef", Msg(CROSS_VERSION_REF)),
    p(2, "minReplicas", Int),
    f(3, "maxReplicas", Int),
    p(4, "targetCPUUtilizationPercentage", Int),
];
/// `kubectl autoscale` sends an autoscaling/v1 HorizontalPodAutoscaler.
static HPA_V1: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(HPA_V1_SPEC)),
];

/// The table of a top-level kind. Status fields are not accepted (they are never written
/// by a create through the main resource).
pub fn kind(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "Pod") => POD,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRON_JOB,
        ("v1", "ResourceQuota") => RESOURCE_QUOTA,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => ROLE_BINDING,
        ("policy/v1", "PodDisruptionBudget") => PDB,
        ("policy/v1", "Eviction") => EVICTION,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("scheduling.k8s.io/v1", "PriorityClass") => PRIORITY_CLASS,
        ("autoscaling/v1", "HorizontalPodAutoscaler") => HPA_V1,
        _ => return None,
    })
}
