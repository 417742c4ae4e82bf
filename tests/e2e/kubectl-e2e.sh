#!/usr/bin/env bash
# Drives a running demo cluster (`cargo xtask demo`) with the real kubectl only:
# apply, get, describe, logs, port-forward, run -i (attach, stdin), scale, rollout (status/history/undo), a Job, a DaemonSet,
# a PersistentVolumeClaim that outlives its pod, a StatefulSet (stable names in DNS, its
# volume following a replaced pod), a HorizontalPodAutoscaler and kubectl top, a
# hostNetwork pod behind a Service, a CustomResourceDefinition and its objects, a LimitRange and
# a ResourceQuota, delete.
# Usage: tests/e2e/kubectl-e2e.sh [kubeconfig]   (default: target/demo/kubeconfig)
# Every wait is bounded; the script removes what it created, also on failure.
set -euo pipefail

KUBECONFIG="${1:-$(dirname "$0")/../../target/demo/kubeconfig}"
export KUBECONFIG
NS="e2e-$$"
k() { kubectl --request-timeout=20s "$@"; }
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
PF_PID=""
cleanup() {
  [ -z "$PF_PID" ] || kill "$PF_PID" 2>/dev/null || true
  k delete crd "widgets.e2e$$.skiff.dev" --wait=false >/dev/null 2>&1 || true
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  k delete namespace "$NS-quota" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

# wait_for <seconds> <description> <command...>: retry until the command succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < end )) || fail "timed out after ${limit}s waiting for $what"
    sleep 1
  done
}

step "cluster"
k get nodes -o wide
[ "$(k get nodes --no-headers | grep -c ' Ready')" -ge 1 ] || fail "no Ready node"

step "apply a namespace, a Deployment and its Service"
k create namespace "$NS"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {app: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: skiff.local/busybox:latest
        command: ["sh", "-c", "echo hello from \$(hostname); while true; do sleep 1; done"]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
YAML
k rollout status deployment/hello -n "$NS" --timeout=120s

step "get and describe"
k get deploy,rs,pods,svc -n "$NS" -o wide
k describe deployment hello -n "$NS" | grep -q "Replicas:" || fail "describe deployment"
POD=$(k get pods -n "$NS" -l app=hello -o jsonpath='{.items[0].metadata.name}')
k describe pod "$POD" -n "$NS" | grep -q "Started" || fail "describe pod shows no Started event"
k get endpointslices -n "$NS" -l kubernetes.io/service-name=hello -o name | grep -q . \
  || fail "no EndpointSlice for the Service"

step "logs"
wait_for 30 "the pod's log" sh -c "kubectl logs -n '$NS' '$POD' | grep -q 'hello from $POD'"
k logs -n "$NS" "$POD" --tail=1
k logs -n "$NS" deployment/hello --timestamps | head -1

step "port-forward reaches a port the pod serves on its own loopback"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: Pod
metadata: {name: web-pf}
spec:
  containers:
  - name: httpd
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo forwarded-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"]
YAML
k wait --for=condition=Ready pod/web-pf -n "$NS" --timeout=120s
PF_LOG=$(mktemp)
kubectl port-forward -n "$NS" pod/web-pf :8080 >"$PF_LOG" 2>&1 &
PF_PID=$!
wait_for 30 "port-forward to listen" grep -q "Forwarding from 127.0.0.1:" "$PF_LOG"
LPORT=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$PF_LOG" | head -1)
for i in 1 2; do   # two connections through the same tunnel
  body=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$LPORT; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3" || true)
  echo "$body" | grep -q forwarded-from-pod || { cat "$PF_LOG"; fail "port-forward request $i: $body"; }
done
kill "$PF_PID"; PF_PID=""
k delete pod web-pf -n "$NS" --wait=false

step "run -i --rm: the pod's output through attach until it ends, then it is removed"
out=$(timeout 120 kubectl --request-timeout=0 run -i --rm --restart=Never att -n "$NS" \
  --image=skiff.local/busybox:latest -- sh -c 'echo first; sleep 3; echo second; echo oops >&2' 2>&1 </dev/null) \
  || fail "kubectl run -i: $out"
for want in first second oops; do
  echo "$out" | grep -q "^$want" || fail "kubectl run -i lost '$want': $out"
done
if echo "$out" | grep -q "falling back"; then fail "attach fell back to logs: $out"; fi
wait_for 30 "the run pod removed" sh -c "! kubectl get pod att -n '$NS'"

step "run -i with piped stdin: the input reaches the container, which ends at its EOF"
out=$(printf 'one\ntwo\n' | timeout 120 kubectl --request-timeout=0 run -i --rm --restart=Never cat -n "$NS" \
  --image=skiff.local/busybox:latest -- sh -c 'cat; echo eof' 2>&1) || fail "kubectl run -i with stdin: $out"
for want in one two eof; do
  echo "$out" | grep -q "^$want\$" || fail "kubectl run -i with stdin lost '$want': $out"
done

step "debug: an ephemeral container joins a running pod"
pod=$(k get pods -n "$NS" -l app=hello -o jsonpath='{.items[0].metadata.name}')
k debug "$pod" -n "$NS" -c dbg --profile=general --image=skiff.local/busybox:latest -- sh -c 'echo debug-ok; sleep 30'
wait_for 60 "the debug container's output" sh -c "kubectl logs '$pod' -n '$NS' -c dbg | grep -q debug-ok"
k get pod "$pod" -n "$NS" -o jsonpath='{.status.ephemeralContainerStatuses[0].name}' | grep -q dbg \
  || fail "no status for the ephemeral container"
[ "$(k get pod "$pod" -n "$NS" -o jsonpath='{.status.phase}')" = Running ] || fail "the debugged pod is not Running"

step "scale"
k scale deployment hello -n "$NS" --replicas=3
k rollout status deployment/hello -n "$NS" --timeout=120s
[ "$(k get pods -n "$NS" -l app=hello --no-headers | grep -c Running)" -eq 3 ] || fail "3 pods after scale"

step "rollout: a new revision, history, undo"
k set image deployment/hello -n "$NS" hello=skiff.local/busybox:latest-missing
wait_for 60 "the new ReplicaSet" sh -c "[ \$(kubectl get rs -n '$NS' -l app=hello --no-headers | wc -l) -ge 2 ]"
k rollout history deployment/hello -n "$NS"
k rollout undo deployment/hello -n "$NS"
k rollout status deployment/hello -n "$NS" --timeout=120s
[ "$(k get deployment hello -n "$NS" -o jsonpath='{.spec.template.spec.containers[0].image}')" = "skiff.local/busybox:latest" ] \
  || fail "undo did not restore the image"

step "errors are Kubernetes-shaped"
out=$(echo '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":"x"}]}}' \
  | k apply -n "$NS" -f - 2>&1 || true)
echo "$out" | grep -q "Invalid value" || fail "invalid name not rejected: $out"

step "a Job runs to completion"
k create job once -n "$NS" --image=skiff.local/busybox:latest -- sh -c 'echo job done'
k wait --for=condition=complete job/once -n "$NS" --timeout=60s
[ "$(k logs -n "$NS" job/once)" = "job done" ] || fail "the Job's log"
k get job once -n "$NS"

step "an Indexed Job runs each index once, its pods knowing their index"
k apply -n "$NS" -f - <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: skiff.local/busybox:latest
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX host=$(hostname)"]
YAML
k wait --for=condition=complete job/shards -n "$NS" --timeout=90s
[ "$(k get job shards -n "$NS" -o jsonpath='{.status.completedIndexes}')" = "0-2" ] || fail "completedIndexes"
for i in 0 1 2; do
  pod=$(k get pods -n "$NS" -l "batch.kubernetes.io/job-completion-index=$i,job-name=shards" \
    --field-selector=status.phase=Succeeded -o name | head -n 1)
  [ "$(k logs -n "$NS" "$pod")" = "index=$i host=shards-$i" ] || fail "the log of index $i"
done

step "a DaemonSet runs one pod on every node"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      containers:
      - {name: c, image: skiff.local/busybox:latest, command: [sleep, "3600"]}
YAML
k rollout status daemonset/everywhere -n "$NS" --timeout=90s
nodes=$(k get nodes --no-headers | wc -l)
on=$(k get pods -n "$NS" -l app=everywhere -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | grep -c .)
[ "$on" -eq "$nodes" ] || fail "daemon pods on $on of $nodes nodes"
k delete daemonset everywhere -n "$NS"

step "a PersistentVolumeClaim keeps its data across pods"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
YAML
wait_for 30 "the claim to be bound" sh -c "[ \"\$(kubectl get pvc data -n '$NS' -o jsonpath='{.status.phase}')\" = Bound ]"
claim_pod() { # name, node ('' for any), script
  cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  ${2:+nodeName: $2}
  restartPolicy: Never
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
  containers:
  - {name: c, image: skiff.local/busybox:latest, command: [sh, -c, "$3"], volumeMounts: [{name: d, mountPath: /data}]}
YAML
}
claim_pod writer "" "echo kept > /data/file"
wait_for 60 "the writer to finish" sh -c "[ \"\$(kubectl get pod writer -n '$NS' -o jsonpath='{.status.phase}')\" = Succeeded ]"
node=$(k get pod writer -n "$NS" -o jsonpath='{.spec.nodeName}')
k delete pod writer -n "$NS"
claim_pod reader "$node" "cat /data/file"
wait_for 60 "the reader to finish" sh -c "[ \"\$(kubectl get pod reader -n '$NS' -o jsonpath='{.status.phase}')\" = Succeeded ]"
[ "$(k logs -n "$NS" reader)" = "kept" ] || fail "the claim's data did not outlive its pod"
k delete pod reader -n "$NS"

step "a claim that waits for its first consumer binds where its pod goes"
node=$(k get nodes -o jsonpath='{.items[1].metadata.name}')
cat <<YAML | k apply -n "$NS" -f -
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: $NS-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: $NS-local}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: $NS-local
  hostPath: {path: /tmp/$NS-local, type: DirectoryOrCreate}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$node]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: local}
spec:
  storageClassName: $NS-local
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
YAML
wait_for 30 "the claim to wait for its consumer" sh -c "kubectl describe pvc local -n '$NS' | grep -q WaitForFirstConsumer"
[ "$(k get pvc local -n "$NS" -o jsonpath='{.status.phase}')" = Pending ] || fail "the claim bound before a consumer"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: Pod
metadata: {name: local-user}
spec:
  restartPolicy: Never
  volumes: [{name: d, persistentVolumeClaim: {claimName: local}}]
  containers:
  - {name: c, image: skiff.local/busybox:latest, command: [sh, -c, "echo here > /data/f && cat /data/f"], volumeMounts: [{name: d, mountPath: /data}]}
YAML
wait_for 60 "the consumer to finish" sh -c "[ \"\$(kubectl get pod local-user -n '$NS' -o jsonpath='{.status.phase}')\" = Succeeded ]"
[ "$(k get pod local-user -n "$NS" -o jsonpath='{.spec.nodeName}')" = "$node" ] || fail "the consumer ran away from the volume's node"
[ "$(k get pvc local -n "$NS" -o jsonpath='{.spec.volumeName}')" = "$NS-local" ] || fail "the claim did not bind to the local volume"
k delete pod local-user -n "$NS"
k delete pvc local -n "$NS"
k delete pv "$NS-local"
k delete storageclass "$NS-local"
rm -rf "/tmp/$NS-local"

step "a StatefulSet: ordered pods, stable DNS names, volumes that follow them"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: skiff.local/busybox:latest, command: [sleep, "3600"], volumeMounts: [{name: www, mountPath: /data}]}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
YAML
k rollout status statefulset/web -n "$NS" --timeout=120s
[ "$(k get pvc www-web-0 www-web-1 -n "$NS" -o jsonpath='{.items[*].status.phase}')" = "Bound Bound" ] \
  || fail "the StatefulSet's claims are not bound"
ip0=$(k get pod web-0 -n "$NS" -o jsonpath='{.status.podIP}')
wait_for 30 "web-0.web to resolve" sh -c "kubectl exec -n '$NS' web-1 -- nslookup web-0.web.$NS.svc.cluster.local | grep -q 'Address: $ip0'"
# An ExternalName Service answers a CNAME to its target, and the target's address with it.
k apply -n "$NS" -f - <<YAML
apiVersion: v1
kind: Service
metadata: {name: hello-alias}
spec: {type: ExternalName, externalName: hello.$NS.svc.cluster.local}
YAML
hello_ip=$(k get svc hello -n "$NS" -o jsonpath='{.spec.clusterIP}')
wait_for 30 "an ExternalName Service to resolve through its CNAME" sh -c "kubectl exec -n '$NS' web-1 -- nslookup hello-alias.$NS.svc.cluster.local | grep -q 'Address: $hello_ip'"
k delete svc hello-alias -n "$NS"
k exec -n "$NS" web-0 -- sh -c 'echo kept > /data/mark'
k delete pod web-0 -n "$NS"
wait_for 90 "web-0 to come back" sh -c "[ \"\$(kubectl get pod web-0 -n '$NS' -o jsonpath='{.status.phase}')\" = Running ]"
[ "$(k exec -n "$NS" web-0 -- cat /data/mark)" = "kept" ] || fail "web-0's volume did not follow it"
k scale statefulset web -n "$NS" --replicas=1
wait_for 60 "web-1 to go" sh -c "! kubectl get pod web-1 -n '$NS'"
k delete statefulset web -n "$NS"

step "a HorizontalPodAutoscaler scales a busy Deployment"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy}
spec:
  replicas: 1
  selector: {matchLabels: {app: busy}}
  template:
    metadata: {labels: {app: busy}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: skiff.local/busybox:latest
        command: [sh, -c, "while :; do :; done"]
        resources: {requests: {cpu: 20m}, limits: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy}
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
YAML
wait_for 90 "the HPA to scale busy to 2" sh -c "[ \"\$(kubectl get deployment busy -n '$NS' -o jsonpath='{.spec.replicas}')\" = 2 ]"
k get hpa busy -n "$NS"
# The metrics API starts sampling at its first request and needs two reads per node.
wait_for 60 "kubectl top pod to show a busy pod" sh -c "kubectl top pod -n '$NS' -l app=busy | grep -q '^busy-'"
k top pod -n "$NS" -l app=busy
wait_for 60 "kubectl top node" sh -c "kubectl top node | grep -q '%'"
k delete deployment busy -n "$NS"
k delete hpa busy -n "$NS"

step "a hostNetwork pod has its node's address, serves through a Service and reaches ClusterIPs"
cat <<YAML | k apply -n "$NS" -f -
apiVersion: v1
kind: Pod
metadata: {name: hostnet, labels: {app: hostnet}}
spec:
  hostNetwork: true
  containers:
  - name: httpd
    image: skiff.local/busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo from-host-network > /www/index.html && exec httpd -f -p 18081 -h /www"]
    ports: [{containerPort: 18081}]
---
apiVersion: v1
kind: Service
metadata: {name: hostnet}
spec:
  type: NodePort
  selector: {app: hostnet}
  ports: [{port: 80, targetPort: 18081}]
YAML
k wait --for=condition=Ready pod/hostnet -n "$NS" --timeout=90s
pod_ip=$(k get pod hostnet -n "$NS" -o jsonpath='{.status.podIP}')
[ "$pod_ip" = "$(k get pod hostnet -n "$NS" -o jsonpath='{.status.hostIP}')" ] || fail "podIP $pod_ip is not the node's"
svc_ip=$(k get svc hostnet -n "$NS" -o jsonpath='{.spec.clusterIP}')
# An HTTP GET from pod $1 to $2:$3, with busybox's nc (its static wget segfaults here).
fetch_hostnet() {
  kubectl exec "$1" -n "$NS" -- sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $2 $3" \
    | grep -q from-host-network
}
wait_for 60 "the ClusterIP to reach the host-network pod" fetch_hostnet deploy/hello "$svc_ip" 80
# The pod uses its node's sockets, which the node's cgroup hooks take to ClusterIPs and to
# its own NodePorts too.
wait_for 60 "the host-network pod to reach a ClusterIP" fetch_hostnet hostnet "$svc_ip" 80
node_port=$(k get svc hostnet -n "$NS" -o jsonpath='{.spec.ports[0].nodePort}')
wait_for 60 "the host-network pod to reach its node's NodePort" fetch_hostnet hostnet "$pod_ip" "$node_port"
k delete pod hostnet -n "$NS"
k delete svc hostnet -n "$NS"

step "a CustomResourceDefinition: its kind is served, validated, printed and removed with it"
CRD_GROUP="e2e$$.skiff.dev"
k apply -f - <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: "widgets.$CRD_GROUP"}
spec:
  group: "$CRD_GROUP"
  scope: Namespaced
  names: {plural: widgets, kind: Widget, shortNames: [wdg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
EOF
k apply -n "$NS" -f - <<EOF
apiVersion: "$CRD_GROUP/v1"
kind: Widget
metadata: {name: w1}
spec: {size: large}
EOF
k get "widgets.$CRD_GROUP" -n "$NS"
[ "$(k get "widgets.$CRD_GROUP" w1 -n "$NS" --no-headers | awk '{print $2}')" = large ] || fail "the Size column is not shown"
bad=$(printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: huge}\n' "$CRD_GROUP" \
  | kubectl apply -n "$NS" -f - 2>&1) && fail "an invalid Widget was accepted"
echo "$bad" | grep -q 'spec.size: Unsupported value: "huge"' || fail "unexpected error: $bad"
# As on Kubernetes, the kind's OpenAPI document may lag its first requests by a moment.
wait_for 30 "kubectl explain to show the schema" sh -c "kubectl explain 'widgets.$CRD_GROUP.spec.size' | grep -q small"
k delete crd "widgets.$CRD_GROUP"
gone=$(kubectl get "widgets.$CRD_GROUP" -n "$NS" 2>&1) && fail "the kind is still served after its CRD went"
echo "$gone" | grep -qE "doesn't have a resource type|NotFound|could not find" || fail "unexpected: $gone"

step "a LimitRange fills in resources; a ResourceQuota holds a Deployment at its pod count"
QNS="$NS-quota"
k create namespace "$QNS"
k apply -n "$QNS" -f - <<EOF
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - type: Container
    default: {cpu: 200m, memory: 64Mi}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: small}
spec:
  hard: {pods: "1", limits.cpu: "1"}
EOF
wait_for 30 "the quota's first count" sh -c "kubectl get quota small -n '$QNS' -o jsonpath='{.status.used.pods}' | grep -qx 0"
k create deployment capped -n "$QNS" --image=skiff.local/busybox:latest --replicas=2 -- sleep 3600
wait_for 90 "one pod of two to run" sh -c "[ \"\$(kubectl get pods -n '$QNS' --field-selector=status.phase=Running -o name | wc -l)\" = 1 ]"
wait_for 30 "the refusal as an event" sh -c "kubectl get events -n '$QNS' --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}' | grep -q 'exceeded quota: small'"
k get quota -n "$QNS"
[ "$(k get quota small -n "$QNS" -o jsonpath='{.status.used.pods}')" = 1 ] || fail "the quota does not count the pod"
[ "$(k get pods -n "$QNS" -o jsonpath='{.items[0].spec.containers[0].resources.limits.cpu}')" = 200m ] \
  || fail "the LimitRange default limit was not applied"
k delete namespace "$QNS" --wait=false

step "delete with cascade"
k delete deployment hello -n "$NS"
wait_for 90 "the pods to go" sh -c "[ -z \"\$(kubectl get pods -n '$NS' -l app=hello -o name)\" ]"
k delete namespace "$NS"
wait_for 90 "the namespace to go" sh -c "! kubectl get namespace '$NS'"
trap - EXIT
echo
echo "kubectl e2e: all steps passed"
