use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ManifestDir;
use crate::source::{ServiceSource, SourceError};

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("skiff-agent-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.0.2]
  conditions: {ready: true}
---
# an empty document
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
data: {a: b}
"#;

#[test]
fn reads_multi_document_files_and_ignores_other_kinds() {
    let dir = TempDir::new();
    dir.write("web.yaml", WEB);
    dir.write("notes.txt", "not a manifest");
    dir.write(".hidden.yaml", "{{{ broken");
    let mut src = ManifestDir::new(dir.path());
    let snap = src.poll().unwrap().expect("first poll yields a snapshot");
    assert_eq!((snap.services.len(), snap.slices.len()), (1, 1));
    assert_eq!(snap.services[0].metadata.name.as_deref(), Some("web"));
    assert!(src.poll().unwrap().is_none(), "unchanged directory");
}

#[test]
fn changes_additions_and_removals_trigger_a_new_snapshot() {
    let dir = TempDir::new();
    let mut src = ManifestDir::new(dir.path());
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 0);
    let extra = dir.write("b.yml", &WEB.replace("name: web,", "name: web2,"));
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 1);
    dir.write("a.yaml", WEB);
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 2);
    std::fs::remove_file(extra).unwrap();
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 1);
    assert!(src.poll().unwrap().is_none());
}

#[test]
fn malformed_file_is_reported_once_with_its_name_then_recovers() {
    let dir = TempDir::new();
    dir.write("web.yaml", WEB);
    let mut src = ManifestDir::new(dir.path());
    src.poll().unwrap().unwrap();
    let bad = dir.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Service\nspec: [unclosed\n",
    );
    let err = src.poll().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(matches!(err, SourceError::Parse { doc: 1, .. }));
    assert!(src.poll().unwrap().is_none(), "reported once per change");
    dir.write("bad.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 1);
}

#[test]
fn wrong_field_types_name_the_document() {
    let dir = TempDir::new();
    let text = format!(
        "{WEB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: {{ports: 5}}\n"
    );
    dir.write("two.yaml", &text);
    let err = ManifestDir::new(dir.path()).poll().unwrap_err();
    assert!(matches!(err, SourceError::Parse { doc: 5, .. }), "{err}");
}

#[test]
fn list_kind_items_are_read() {
    let dir = TempDir::new();
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
      {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
       "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 53, "protocol": "UDP"}]}}]}"#;
    dir.write("list.json", list);
    assert_eq!(
        ManifestDir::new(dir.path())
            .poll()
            .unwrap()
            .unwrap()
            .services
            .len(),
        1
    );
}

#[test]
fn missing_directory_is_an_error_once_then_read_when_it_appears() {
    let dir = TempDir::new();
    let sub = dir.path().join("later");
    let mut src = ManifestDir::new(&sub);
    assert!(matches!(src.poll(), Err(SourceError::Read { .. })));
    assert!(src.poll().unwrap().is_none());
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("web.yaml"), WEB).unwrap();
    assert_eq!(src.poll().unwrap().unwrap().services.len(), 1);
}
