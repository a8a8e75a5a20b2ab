//! Hot reload on a real directory: edit, break, fix, delete, rename, editor saves, bursts, the
//! Kubernetes ConfigMap symlink swap, polling.

mod common;

use common::{poll_mode, webhook, TestServer};
use functiond::snapshot::{FileStatus, Outcome};

fn described(name: &str, description: &str) -> String {
    format!("{}description = \"{description}\"\n", webhook(name))
}

#[tokio::test]
async fn edit_break_fix_delete() {
    let s = TestServer::start(&[("hook.toml", &described("hook", "v1"))]).await;
    let first = s.snapshot();
    let v1 = first.functions.get("hook").expect("loaded").clone();

    // Edit: the new version is live, with a new hash.
    s.write("hook.toml", &described("hook", "v2"));
    let snap = s
        .wait_for("v2", |sn| {
            sn.functions
                .get("hook")
                .is_some_and(|f| f.function.description.as_deref() == Some("v2"))
        })
        .await;
    let v2 = snap.functions.get("hook").expect("loaded");
    assert_ne!(v1.hash, v2.hash);
    assert_eq!(
        snap.reloads.back().map(|r| r.changed.clone()),
        Some(vec!["hook".to_string()])
    );
    // The old version is untouched: work holding it finishes on it.
    assert_eq!(v1.function.description.as_deref(), Some("v1"));

    // Break: the last good version stays live, marked stale, with the error.
    s.write(
        "hook.toml",
        "name = \"hook\"\ntype = \"webhook\"\nbogus = 1\n",
    );
    let snap = s
        .wait_for("stale", |sn| {
            sn.functions
                .get("hook")
                .is_some_and(|f| f.status() == FileStatus::Stale)
        })
        .await;
    let kept = snap.functions.get("hook").expect("still live");
    assert_eq!(kept.function.description.as_deref(), Some("v2"));
    assert!(
        kept.errors[0]
            .to_string()
            .contains("hook.toml:3:1: unknown key `bogus`"),
        "{:?}",
        kept.errors
    );
    assert_eq!(
        snap.reloads.back().map(|r| r.outcome.clone()),
        Some(Outcome::Partial)
    );

    // Fix.
    s.write("hook.toml", &described("hook", "v3"));
    s.wait_for("fixed", |sn| {
        sn.functions.get("hook").is_some_and(|f| {
            f.status() == FileStatus::Ok && f.function.description.as_deref() == Some("v3")
        })
    })
    .await;

    // Delete.
    std::fs::remove_file(s.functions_dir().join("hook.toml")).expect("rm");
    let snap = s.wait_for("removed", |sn| sn.functions.is_empty()).await;
    assert_eq!(
        snap.reloads.back().map(|r| r.removed.clone()),
        Some(vec!["hook".to_string()])
    );
    s.stop().await;
}

#[tokio::test]
async fn rename_keeps_the_function_and_taken_names_are_rejected() {
    let s = TestServer::start(&[("a.toml", &webhook("one"))]).await;
    std::fs::rename(
        s.functions_dir().join("a.toml"),
        s.functions_dir().join("b.toml"),
    )
    .expect("mv");
    let snap = s
        .wait_for("moved", |sn| {
            sn.functions
                .get("one")
                .is_some_and(|f| f.file.to_str() == Some("b.toml"))
        })
        .await;
    assert_eq!(snap.functions.len(), 1);

    // A new file claiming a taken name is rejected; the holder stays.
    s.write("c.toml", &webhook("one"));
    let snap = s
        .wait_for("rejected", |sn| {
            sn.files.values().any(|f| f.status == FileStatus::Rejected)
        })
        .await;
    assert_eq!(
        snap.functions.get("one").map(|f| f.file.to_str()),
        Some(Some("b.toml"))
    );
    let c = snap
        .files
        .iter()
        .find(|(p, _)| p.to_str() == Some("c.toml"))
        .expect("c listed")
        .1;
    assert!(
        c.errors[0]
            .message
            .contains("name `one` is already used by"),
        "{:?}",
        c.errors
    );
    s.stop().await;
}

#[tokio::test]
async fn editor_save_by_rename_is_seen() {
    let s = TestServer::start(&[("hook.toml", &described("hook", "v1"))]).await;
    // What vim and many IDEs do: write a temporary file, then rename it over the original.
    let tmp = s.functions_dir().join(".hook.toml.swp");
    std::fs::write(&tmp, described("hook", "saved")).expect("write tmp");
    std::fs::rename(&tmp, s.functions_dir().join("hook.toml")).expect("rename");
    s.wait_for("saved", |sn| {
        sn.functions
            .get("hook")
            .is_some_and(|f| f.function.description.as_deref() == Some("saved"))
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn a_burst_of_writes_is_one_or_two_reloads() {
    let s = TestServer::start(&[]).await;
    let before = s.snapshot().generation;
    // Like a `git pull` that changes 50 files ...
    for i in 0..50 {
        s.write(&format!("f{i:02}.toml"), &webhook(&format!("f{i:02}")));
    }
    // ... and an editor that saves one of them 100 times.
    for i in 0..100 {
        s.write("f00.toml", &described("f00", &format!("rev {i}")));
    }
    let snap = s
        .wait_for("all 50", |sn| {
            sn.functions.len() == 50
                && sn
                    .functions
                    .get("f00")
                    .is_some_and(|f| f.function.description.as_deref() == Some("rev 99"))
        })
        .await;
    // Give a straggling batch a chance to show up before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let reloads = s.snapshot().generation - before;
    assert!(
        reloads <= 2,
        "{reloads} reloads for one burst (generation {})",
        snap.generation
    );
    s.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn kubernetes_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let s = TestServer::start(&[]).await;
    let dir = s.functions_dir();
    // The layout a ConfigMap volume has: versioned folder, `..data` link, top-level links.
    std::fs::create_dir(dir.join("..2026_01_01")).expect("mkdir");
    std::fs::write(dir.join("..2026_01_01/hook.toml"), described("hook", "v1")).expect("write");
    symlink("..2026_01_01", dir.join("..data")).expect("link data");
    symlink("..data/hook.toml", dir.join("hook.toml")).expect("link file");
    s.wait_for("v1", |sn| {
        sn.functions
            .get("hook")
            .is_some_and(|f| f.function.description.as_deref() == Some("v1"))
    })
    .await;

    // The kubelet's atomic update: new folder, new link, rename over `..data`.
    std::fs::create_dir(dir.join("..2026_01_02")).expect("mkdir");
    std::fs::write(dir.join("..2026_01_02/hook.toml"), described("hook", "v2")).expect("write");
    symlink("..2026_01_02", dir.join("..data_tmp")).expect("link tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    std::fs::remove_dir_all(dir.join("..2026_01_01")).expect("cleanup");
    let snap = s
        .wait_for("v2", |sn| {
            sn.functions
                .get("hook")
                .is_some_and(|f| f.function.description.as_deref() == Some("v2"))
        })
        .await;
    // The hidden folders are not read twice.
    assert_eq!(
        snap.files.len(),
        1,
        "{:?}",
        snap.files.keys().collect::<Vec<_>>()
    );
    s.stop().await;
}

#[tokio::test]
async fn polling_mode_sees_changes() {
    let s = TestServer::start_with(&[("hook.toml", &described("hook", "v1"))], poll_mode).await;
    // Polling compares size and modification time: change the size to be independent of the
    // file system's timestamp granularity.
    s.write("hook.toml", &described("hook", "version two"));
    s.wait_for("v2", |sn| {
        sn.functions
            .get("hook")
            .is_some_and(|f| f.function.description.as_deref() == Some("version two"))
    })
    .await;
    s.write("other.toml", &webhook("other"));
    s.wait_for("other", |sn| sn.functions.contains_key("other"))
        .await;
    s.stop().await;
}

#[tokio::test]
async fn a_script_edit_is_a_change_of_its_function() {
    let toml = "name = \"hook\"\ntype = \"webhook\"\n[flow]\nscript = \"hook.js\"\n";
    let s = TestServer::start(&[
        ("hook.toml", toml),
        ("hook.js", "setWebhookResponse({status: 200})"),
    ])
    .await;
    let before = s.snapshot().functions.get("hook").map(|f| f.hash.clone());
    s.write("hook.js", "setWebhookResponse({status: 201})");
    s.wait_for("script change", |sn| {
        sn.functions.get("hook").map(|f| f.hash.clone()) != before
    })
    .await;
    s.stop().await;
}
