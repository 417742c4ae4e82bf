//! The parts of an OCI/Docker image config the runtime uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an image says about how to run it (`config` of the image config).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// The image config: run settings and the layers' diff ids, bottom first.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    pub config: ImageConfig,
    pub diff_ids: Vec<String>,
}

/// Parses an image config blob.
pub fn parse(bytes: &[u8]) -> Result<ParsedConfig, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("image config: {e}"))?;
    let list = |x: &Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let c = &v["config"];
    let diff_ids = v["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("image config has no rootfs.diff_ids")?
        .iter()
        .map(|d| {
            d.as_str()
                .map(str::to_owned)
                .ok_or("a diff id is not a string")
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedConfig {
        config: ImageConfig {
            entrypoint: list(&c["Entrypoint"]),
            cmd: list(&c["Cmd"]),
            env: list(&c["Env"]),
            working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_owned(),
            user: c["User"].as_str().unwrap_or_default().to_owned(),
        },
        diff_ids,
    })
}
