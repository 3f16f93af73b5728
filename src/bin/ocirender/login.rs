//! `login` and `logout`: ask for what is missing (user name on the terminal, password without
//! echo), check it against the registry, store it where docker and podman look.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use ocirender::registry::{self, Credentials, RegistryOptions};

use crate::args::{LoginArgs, LogoutArgs};

pub fn run_login(a: LoginArgs) -> anyhow::Result<()> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if interactive && !a.password_stdin => prompt("Username: ", true)?,
        None => bail!("--username is required when the password comes from standard input"),
    };
    let password = if a.password_stdin || !interactive {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        prompt("Password: ", false)?
    };
    if username.is_empty() || password.is_empty() {
        bail!("a user name and a password are required");
    }
    let credentials = Credentials::Basic { username, password };
    let options = RegistryOptions {
        insecure: a.insecure,
        ..RegistryOptions::default()
    };
    let stored = crate::runtime()?
        .block_on(registry::login(&a.registry, &credentials, &options))
        .with_context(|| format!("cannot log in to {}", a.registry))?;
    let _ = writeln!(io::stderr(), "Login succeeded (stored in {stored})");
    Ok(())
}

pub fn run_logout(a: LogoutArgs) -> anyhow::Result<()> {
    let removed = registry::logout(&a.registry)
        .with_context(|| format!("cannot log out of {}", a.registry))?;
    let message = if removed {
        format!("Removed login credentials for {}", a.registry)
    } else {
        format!("Not logged in to {}", a.registry)
    };
    let _ = writeln!(io::stderr(), "{message}");
    Ok(())
}

/// Reads one line from the terminal after printing `label`; without `echo`, the terminal does
/// not show what is typed.
fn prompt(label: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = io::stderr();
    let _ = write!(err, "{label}");
    let _ = err.flush();
    let stdin = io::stdin();
    let saved = if echo {
        None
    } else {
        let mut attrs =
            rustix::termios::tcgetattr(&stdin).context("cannot read terminal settings")?;
        let saved = attrs.clone();
        attrs.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &attrs)
            .context("cannot turn off terminal echo")?;
        Some(saved)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        let _ = writeln!(err);
    }
    read.context("cannot read from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
