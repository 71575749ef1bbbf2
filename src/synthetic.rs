//! A generator of synthetic governed repositories, for benchmarks and scale
//! tests: N intents with the applications, versions, principals and
//! entitlements they need, all valid and all ALLOW under the built-in policy.
//!
//! Config, principals and tenant policy come from the embedded sample, so
//! the synthetic tenant is judged by the same rules as the sample.

use crate::sample::SAMPLE_REPO;
use std::fmt::Write as _;
use std::path::Path;

/// The segments intents are spread over: (boundary, business unit, publisher,
/// plane). Fabrikam (acq-002) is managed by Configuration Manager, as the
/// sample tenant's policy requires.
const SEGMENTS: &[(&str, &str, &str, &str)] = &[
    (
        "acq-001",
        "bu-finance",
        "synthetic-publisher-finance",
        "intune",
    ),
    ("acq-001", "bu-hr", "synthetic-publisher-hr", "intune"),
    ("acq-001", "bu-it", "synthetic-publisher-it", "intune"),
    (
        "acq-002",
        "bu-engineering",
        "synthetic-publisher-engineering",
        "sccm",
    ),
];
const PLANES: &[&str] = &["intune", "sccm"];

/// The rollback strategy an intent on `plane` names: its plane's own (the
/// policy denies another plane's, which that plane would refuse).
fn rollback_strategy(plane: &str) -> &'static str {
    match plane {
        "intune" => "intune-supersedence",
        "jamf" => "jamf-uninstall-policy",
        "sccm" => "sccm-uninstall-deployment",
        "landscape" => "landscape-remove-packages",
        "ansible" => "ansible-uninstall",
        other => unreachable!("no synthetic plane {other}"),
    }
}

const RINGS: &[(&str, u32)] = &[
    ("ring-0-lab", 8),
    ("ring-1-canary", 40),
    ("ring-2-pilot", 200),
    ("ring-3-department", 1500),
    ("ring-4-global", 6000),
];

fn hash(seed: usize, salt: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{salt}:{seed}").as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// Files of a synthetic repository with `intents` intents: (path, text).
pub fn files(intents: usize) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SAMPLE_REPO
        .iter()
        .filter(|(path, _)| {
            *path == "ringmaster.yaml"
                || path.starts_with("principals/")
                || path.starts_with("policies/")
        })
        .map(|(path, bytes)| {
            (
                (*path).to_owned(),
                String::from_utf8_lossy(bytes).into_owned(),
            )
        })
        .collect();
    for (boundary, unit, publisher, plane) in SEGMENTS {
        out.push((
            format!("principals/{publisher}.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: Principal\nid: {publisher}\nemail: {publisher}@contoso.example\nroles: [publisher]\nscope:\n  acquisition_boundaries: [{boundary}]\n  business_units: [{unit}]\n"
            ),
        ));
        for (ring, devices) in RINGS {
            let id = format!("synthetic-{plane}-{boundary}-{unit}-{ring}");
            out.push((
                format!("entitlements/{id}.yaml"),
                format!(
                    "apiVersion: ringmaster.dev/v1\nkind: EntitlementRule\nid: {id}\nplane: {plane}\nring: {ring}\nscope:\n  acquisition_boundary: {boundary}\n  business_unit: {unit}\ngroups:\n  - id: {}\n    name: SYN-{unit}-{ring}\nexpected_devices: {devices}\n",
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_bytes())
                ),
            ));
        }
    }
    let applications = intents.div_ceil(SEGMENTS.len());
    for app in 0..applications {
        let id = format!("synthetic-app-{app:05}");
        out.push((
            format!("apps/{id}/app.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: Application\nid: {id}\nname: Synthetic application {app}\nowner: alice\ncategory: productivity\nsupport_tier: tier-3\nlicensing: site\nplanes: [intune, sccm]\nallowed_scope:\n  acquisition_boundaries: [acq-001, acq-002]\n  business_units: [bu-finance, bu-hr, bu-it, bu-engineering]\n"
            ),
        ));
        for (minor, version) in ["1.0.0", "1.1.0"].iter().enumerate() {
            let mut text = format!(
                "apiVersion: ringmaster.dev/v1\nkind: ApplicationVersion\napplication_id: {id}\nversion: \"{version}\"\nos_matrix:\n  - os: windows\n    arch: [x64]\nartifacts:\n"
            );
            for plane in PLANES {
                let _ = write!(
                    text,
                    "  - id: {id}-{version}-{plane}\n    plane: {plane}\n    file: {id}-{version}.msi\n    sha256: \"{}\"\n    signature: {{signed: true, signer: Contoso Ltd, verified: true}}\n    provenance: {{source: internal-build, slsa_level: 3}}\n    sbom: {{format: cyclonedx, components: 42, cves: []}}\n    install: msiexec /i {id}-{version}.msi /qn\n    uninstall: msiexec /x {id}-{version}.msi /qn\n    detection: {{type: file, value: 'C:\\Program Files\\{id}\\app.exe', version: \"{version}\"}}\n",
                    hash(app * 2 + minor, plane)
                );
            }
            out.push((format!("apps/{id}/{version}.yaml"), text));
        }
    }
    for index in 0..intents {
        let app = index / SEGMENTS.len();
        let (boundary, unit, publisher, plane) = SEGMENTS[index % SEGMENTS.len()];
        let application = format!("synthetic-app-{app:05}");
        let intent_id = format!("{application}-{}", unit.trim_start_matches("bu-"));
        let rings: Vec<&str> = RINGS.iter().map(|(ring, _)| *ring).collect();
        out.push((
            format!("intents/{intent_id}.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: DeploymentIntent\nintent_id: {intent_id}\napplication_id: {application}\nversion: \"1.1.0\"\nartifact_hash: \"{}\"\ntarget_scope:\n  acquisition_boundary: {boundary}\n  business_unit: {unit}\n  rings: [{}]\nrollback_plan:\n  strategy: {strategy}\n  rollback_version: \"1.0.0\"\n  validated: true\nrequested_by: {publisher}\n",
                hash(app * 2 + 1, plane),
                rings.join(", "),
                strategy = rollback_strategy(plane),
            ),
        ));
    }
    out
}

/// Writes a synthetic repository with `intents` intents below `dir`.
pub fn write(dir: &Path, intents: usize) -> std::io::Result<usize> {
    write_with_progress(dir, intents, &crate::progress::Silent)
}

/// [`write`], reporting each file written.
pub fn write_with_progress(
    dir: &Path,
    intents: usize,
    progress: &dyn crate::progress::Progress,
) -> std::io::Result<usize> {
    let files = files(intents);
    progress.stage("writing files", Some(files.len() as u64));
    for (relative, text) in &files {
        progress.advance(1);
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(files.len())
}
