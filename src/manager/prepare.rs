//! Everything about a start that is checked and resolved before the spawn: the command's own
//! problems (in the wire contract's order), the working directory, the environment, and the
//! program an argv names. Pure functions of the configuration and the command, so each rule is
//! unit-tested here without starting anything.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::command::{Command, MAX_TERMINAL_DIMENSION, shell_join};
use crate::error::Error;
use crate::manager::builder::{CHAT_ID_ENV, Config};
use crate::sys::{self, SpawnStage};

/// Where programs are looked up when the child's environment has no `PATH` (as `execvp`).
pub(crate) const DEFAULT_SEARCH_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What [`prepare`] resolved.
pub(crate) struct Prepared {
    /// `PATH` of the child's environment, for looking up an argv program.
    pub(crate) path_var: Option<OsString>,
    pub(crate) argv: Vec<Vec<u8>>,
    pub(crate) envp: Arc<Vec<CString>>,
    pub(crate) workdir: PathBuf,
    /// For display: the shell command, or the argv joined with shell quoting.
    pub(crate) display: String,
}

/// Checks the command and resolves its working directory and environment. `base_envp` is the
/// base environment already converted, shared by every start that changes nothing in it.
///
/// # Errors
///
/// The command's own problems, in the contract's order: no command, both kinds, an empty argv,
/// a NUL byte, a bad environment name, a relative or missing working directory.
pub(crate) fn prepare(
    config: &Config,
    base_envp: &Arc<Vec<CString>>,
    cmd: &Command,
) -> Result<Prepared, Error> {
    let (argv, display) = match (&cmd.shell, &cmd.argv) {
        (None, None) => return Err(Error::CommandRequired),
        (Some(_), Some(_)) => return Err(Error::CommandAndArgv),
        (Some(shell), None) => {
            check_nul("command", shell)?;
            let sh = config.shell.as_os_str().as_bytes().to_vec();
            (
                vec![sh, b"-c".to_vec(), shell.clone().into_bytes()],
                shell.clone(),
            )
        }
        (None, Some(argv)) => {
            if argv.first().is_none_or(String::is_empty) {
                return Err(Error::EmptyArgv);
            }
            for (i, arg) in argv.iter().enumerate() {
                check_nul(&format!("argv[{i}]"), arg)?;
            }
            let words = argv.iter().map(|a| a.clone().into_bytes()).collect();
            (words, shell_join(argv))
        }
    };
    for (key, value) in &cmd.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(Error::InvalidEnvKey {
                key: key.replace('\0', "\\0"),
            });
        }
        check_nul(&format!("env[\"{key}\"]"), value)?;
    }
    if let Some(size) = cmd.tty {
        check_terminal_size(u64::from(size.rows), u64::from(size.cols))?;
    }
    let workdir = resolve_workdir(config, cmd.workdir.as_deref())?;
    // Without a hook, request variables, a chat or a terminal, every child gets the base
    // environment: built once, shared.
    let fast =
        config.env_hook.is_none() && cmd.env.is_empty() && cmd.chat.is_none() && cmd.tty.is_none();
    let env = (!fast).then(|| build_env(config, cmd));
    // The program is looked up later, after the running limit: a program that cannot be
    // found is a failed spawn, which the contract puts after 429 and 503.
    let path_var = env
        .as_ref()
        .unwrap_or(&config.base_env)
        .get(OsStr::new("PATH"))
        .cloned();
    let envp = match env {
        Some(env) => Arc::new(envp_of(&env)),
        None => Arc::clone(base_envp),
    };
    Ok(Prepared {
        path_var,
        argv,
        envp,
        workdir,
        display,
    })
}

/// A terminal of `rows` x `cols` must have 1 to [`MAX_TERMINAL_DIMENSION`] of each.
///
/// # Errors
///
/// [`Error::InvalidTerminalSize`] otherwise.
pub(crate) fn check_terminal_size(rows: u64, cols: u64) -> Result<(), Error> {
    let ok = |n: u64| (1..=u64::from(MAX_TERMINAL_DIMENSION)).contains(&n);
    if ok(rows) && ok(cols) {
        Ok(())
    } else {
        Err(Error::InvalidTerminalSize { rows, cols })
    }
}

/// The working directory: the command's own (absolute, existing), else the configured
/// provider's if it names an existing directory, else the current directory, else `/`.
///
/// # Errors
///
/// A NUL byte in the command's directory, a relative one, or one that is not a directory.
pub(crate) fn resolve_workdir(config: &Config, explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
        if dir.as_os_str().as_bytes().contains(&0) {
            return Err(Error::NulByte {
                field: "workdir".into(),
            });
        }
        if !dir.is_absolute() {
            return Err(Error::RelativeWorkdir(dir.to_path_buf()));
        }
        if !dir.is_dir() {
            return Err(Error::WorkdirNotFound(dir.to_path_buf()));
        }
        return Ok(dir.to_path_buf());
    }
    if let Some(provider) = &config.workdir_provider
        && let Some(dir) = provider()
        && dir.is_absolute()
        && dir.is_dir()
    {
        return Ok(dir);
    }
    match std::env::current_dir() {
        Ok(dir) if dir.is_dir() => Ok(dir),
        _ => Ok(PathBuf::from("/")),
    }
}

/// Base environment, then the hook, then (terminal processes) the terminal `TERM`, then the
/// request's variables, then the chat id.
pub(crate) fn build_env(config: &Config, cmd: &Command) -> BTreeMap<OsString, OsString> {
    let mut env = config.base_env.clone();
    if let Some(hook) = &config.env_hook {
        let mut rewritten = env.clone();
        match hook(&mut rewritten) {
            Ok(()) => env = rewritten,
            Err(e) => log::warn!(
                "environment hook failed, using the base environment: {e}{}",
                chat_suffix(cmd.chat)
            ),
        }
    }
    if cmd.tty.is_some() {
        // The base environment's TERM is the host's terminal; the command's own wins below.
        env.insert("TERM".into(), config.terminal_term.clone().into());
    }
    for (key, value) in &cmd.env {
        env.insert(key.into(), value.into());
    }
    if let Some(chat) = cmd.chat {
        env.insert(CHAT_ID_ENV.into(), chat.to_string().into());
    }
    env
}

fn check_nul(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::NulByte {
            field: field.to_string(),
        });
    }
    Ok(())
}

/// Finds a program the way `execvp` would, but in the parent, before the spawn: a name with a
/// slash is used as it is; otherwise the first executable file of that name in the child's
/// `PATH` (or [`DEFAULT_SEARCH_PATH`] when it has none).
///
/// # Errors
///
/// `NotFound` when no directory of the search path has an executable file of that name.
pub(crate) fn resolve_program(name: &str, path: Option<&OsString>) -> io::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = path.cloned().unwrap_or_else(|| DEFAULT_SEARCH_PATH.into());
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("program \"{name}\" not found in PATH"),
    ))
}

/// `KEY=VALUE` C strings of an environment, leaving out what no program can receive (a name
/// that is empty or has `=`, a NUL anywhere: requests are checked before this; the base
/// environment and the hook's result are filtered here).
pub(crate) fn envp_of(env: &BTreeMap<OsString, OsString>) -> Vec<CString> {
    env.iter()
        .filter(|(k, _)| !k.is_empty() && !k.as_bytes().contains(&b'='))
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect()
}

/// The library's error for a failed spawn: the caller's mistakes (an argv program that cannot
/// be found or executed, a working directory that cannot be entered, a command too large for
/// the system) apart from the system's own failures. `program` is the argv program as named
/// (`None` for a shell command, whose failure to run the shell is the system's).
pub(crate) fn spawn_error(
    failure: sys::SpawnFailure,
    program: Option<String>,
    workdir: &Path,
) -> Error {
    let errno = failure.error.raw_os_error();
    let source = failure.error;
    match (failure.stage, errno, program) {
        (SpawnStage::Exec, Some(libc::E2BIG), _) => Error::TooLarge(source),
        (SpawnStage::Exec, Some(libc::ENOENT | libc::ENOTDIR), Some(program)) => {
            Error::ProgramNotFound { program, source }
        }
        (
            SpawnStage::Exec,
            Some(libc::EACCES | libc::ENOEXEC | libc::EPERM | libc::EISDIR),
            Some(program),
        ) => Error::ProgramNotExecutable { program, source },
        (
            SpawnStage::Workdir,
            Some(libc::EACCES | libc::EPERM | libc::ENOTDIR | libc::ENOENT),
            _,
        ) => Error::WorkdirNotEnterable {
            dir: workdir.to_path_buf(),
            source,
        },
        _ => Error::Spawn(source),
    }
}

/// ` chat=<uuid>` for log lines, or nothing.
pub(crate) fn chat_suffix(chat: Option<Uuid>) -> String {
    chat.map(|c| format!(" chat={c}")).unwrap_or_default()
}

/// The command as a log line shows it.
pub(crate) fn cmd_label(cmd: &Command) -> String {
    match (&cmd.shell, &cmd.argv) {
        (Some(shell), _) => shell.clone(),
        (_, Some(argv)) => shell_join(argv),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::ManagerBuilder;

    fn config() -> Config {
        ManagerBuilder::default()
            .base_env([("PATH", "/usr/bin:/bin"), ("KEEP", "1")])
            .into_config()
    }

    fn prep(cmd: &Command) -> Result<Prepared, Error> {
        let config = config();
        let base = Arc::new(envp_of(&config.base_env));
        prepare(&config, &base, cmd)
    }

    fn env_of(p: &Prepared) -> Vec<String> {
        p.envp
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn errors_come_in_the_contracts_order() {
        assert!(matches!(
            prep(&Command::from_parts(None, None)),
            Err(Error::CommandRequired)
        ));
        assert!(matches!(
            prep(&Command::from_parts(
                Some("x".into()),
                Some(vec!["y".into()])
            )),
            Err(Error::CommandAndArgv)
        ));
        assert!(matches!(
            prep(&Command::argv(Vec::<String>::new())),
            Err(Error::EmptyArgv)
        ));
        assert!(matches!(prep(&Command::argv([""])), Err(Error::EmptyArgv)));
        // A NUL in the command beats a bad environment name and a relative workdir.
        let cmd = Command::shell("a\0b").env("", "x").workdir("rel");
        assert!(matches!(prep(&cmd), Err(Error::NulByte { field }) if field == "command"));
        let cmd = Command::argv(["ls", "a\0"]);
        assert!(matches!(prep(&cmd), Err(Error::NulByte { field }) if field == "argv[1]"));
        let cmd = Command::shell("true").env("A=B", "x").workdir("rel");
        assert!(matches!(prep(&cmd), Err(Error::InvalidEnvKey { key }) if key == "A=B"));
        let cmd = Command::shell("true").env("A\0", "x");
        assert!(matches!(prep(&cmd), Err(Error::InvalidEnvKey { key }) if key == "A\\0"));
        let cmd = Command::shell("true").env("A", "x\0");
        assert!(matches!(prep(&cmd), Err(Error::NulByte { field }) if field == "env[\"A\"]"));
        let cmd = Command::shell("true").workdir("rel");
        assert!(matches!(prep(&cmd), Err(Error::RelativeWorkdir(_))));
        let cmd = Command::shell("true").workdir("/nonexistent/procwarden");
        assert!(matches!(prep(&cmd), Err(Error::WorkdirNotFound(_))));
        let cmd = Command::shell("true").workdir("/a\0b");
        assert!(matches!(prep(&cmd), Err(Error::NulByte { field }) if field == "workdir"));
    }

    #[test]
    fn shell_commands_run_under_the_configured_shell() {
        let p = prep(&Command::shell("echo hi")).expect("prepared");
        assert_eq!(
            p.argv,
            vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()]
        );
        assert_eq!(p.display, "echo hi");
        let p = prep(&Command::argv(["echo", "a b"])).expect("prepared");
        assert_eq!(p.display, "echo 'a b'");
    }

    #[test]
    fn the_environment_is_layered() {
        // Nothing changes the base: the shared base environment is used as it is.
        let p = prep(&Command::shell("true")).expect("prepared");
        assert_eq!(env_of(&p), ["KEEP=1", "PATH=/usr/bin:/bin"]);
        // The request's variables, then the chat id, win over the base.
        let chat = Uuid::new_v4();
        let cmd = Command::shell("true")
            .env("KEEP", "2")
            .env(CHAT_ID_ENV, "mine")
            .env("PATH", "/opt")
            .chat(chat);
        let p = prep(&cmd).expect("prepared");
        assert_eq!(
            env_of(&p),
            [
                format!("{CHAT_ID_ENV}={chat}"),
                "KEEP=2".to_string(),
                "PATH=/opt".to_string()
            ]
        );
        assert_eq!(p.path_var.as_deref(), Some(OsStr::new("/opt")));
    }

    #[test]
    fn the_hook_rewrites_the_base_and_a_failing_hook_is_ignored() {
        let mut config = ManagerBuilder::default()
            .base_env([("A", "1")])
            .env_hook(|env| {
                env.insert("B".into(), "2".into());
                Ok(())
            })
            .into_config();
        let env = build_env(&config, &Command::shell("true").env("A", "3"));
        assert_eq!(env.get(OsStr::new("A")), Some(&OsString::from("3")));
        assert_eq!(env.get(OsStr::new("B")), Some(&OsString::from("2")));
        config.env_hook = Some(Box::new(|env| {
            env.insert("C".into(), "x".into());
            Err(io::Error::other("no"))
        }));
        let env = build_env(&config, &Command::shell("true"));
        assert_eq!(env.get(OsStr::new("C")), None);
    }

    #[test]
    fn envp_leaves_out_what_no_program_can_receive() {
        let mut env = BTreeMap::new();
        env.insert(OsString::from(""), OsString::from("x"));
        env.insert(OsString::from("A=B"), OsString::from("x"));
        env.insert(OsString::from("N"), OsString::from("a\0b"));
        env.insert(OsString::from("OK"), OsString::from("v=w"));
        let envp: Vec<_> = envp_of(&env).into_iter().map(CString::into_bytes).collect();
        assert_eq!(envp, vec![b"OK=v=w".to_vec()]);
    }

    #[test]
    fn the_working_directory_falls_back_to_the_current_one() {
        let mut config = config();
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(resolve_workdir(&config, None).ok(), Some(cwd.clone()));
        assert_eq!(
            resolve_workdir(&config, Some(Path::new(""))).ok(),
            Some(cwd.clone())
        );
        config.workdir_provider = Some(Box::new(|| Some(PathBuf::from("/nonexistent/pw"))));
        assert_eq!(resolve_workdir(&config, None).ok(), Some(cwd));
        config.workdir_provider = Some(Box::new(|| Some(PathBuf::from("/tmp"))));
        assert_eq!(
            resolve_workdir(&config, None).ok(),
            Some(PathBuf::from("/tmp"))
        );
        assert_eq!(
            resolve_workdir(&config, Some(Path::new("/"))).ok(),
            Some(PathBuf::from("/"))
        );
    }

    #[test]
    fn programs_are_found_as_execvp_finds_them() {
        let sh = resolve_program("sh", Some(&OsString::from("/nonexistent:/bin"))).expect("sh");
        assert_eq!(sh, PathBuf::from("/bin/sh"));
        assert_eq!(
            resolve_program("./x", None).ok(),
            Some(PathBuf::from("./x"))
        );
        let missing = resolve_program("procwarden-no-such-program", None).expect_err("missing");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        // A directory or a file without an execute bit is not a program.
        assert!(resolve_program("tmp", Some(&OsString::from("/"))).is_err());
        let dir = std::env::temp_dir().join(format!("procwarden-prepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let plain = dir.join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").expect("file");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("mode");
        let found = resolve_program("plain", Some(&dir.clone().into_os_string()));
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).expect("mode");
        let found_exec = resolve_program("plain", Some(&dir.clone().into_os_string()));
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(found.is_err());
        assert_eq!(found_exec.ok(), Some(plain));
    }
}
