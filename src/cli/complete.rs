//! `procwarden completions bash|zsh|fish`: completion scripts made from the table of
//! subcommands and flags in `args` ([`FLAGS`], [`CLIENT_FLAGS`]) and the descriptions in the
//! help texts, so that a flag the parser learns appears in every shell with no more work.
//! Process IDs are completed from `procwarden ps` (with the `--url` on the line, if any).

use super::args::{CLIENT_FLAGS, FLAGS, Flag, OVERVIEW, Positional, SUBCOMMANDS, Spec, Value};

/// The completion script for `shell` (`bash`, `zsh` or `fish`; anything else gets bash's).
pub(super) fn script(shell: &str) -> String {
    match shell {
        "zsh" => zsh(),
        "fish" => fish(),
        _ => bash(),
    }
}

/// The one-line summary of a subcommand, from the overview (`procwarden --help`).
pub(super) fn summary(name: &str) -> &'static str {
    let lead = format!("procwarden {name}");
    OVERVIEW
        .lines()
        .map(str::trim_start)
        .find(|line| line.starts_with(&lead) && line[lead.len()..].starts_with([' ', '\t']))
        .and_then(|line| line.rsplit_once("  "))
        .map_or("", |(_, text)| text.trim())
}

/// The description of a flag: the text beside it in `help` (its first line), if any.
pub(super) fn describe(flag: &Flag, help: &str) -> String {
    let long = flag.names[0];
    help.lines()
        .map(str::trim_start)
        .find(|line| {
            line.starts_with(long)
                && line[long.len()..].starts_with([' ', ',', '='])
                && line.contains("  ")
        })
        .and_then(|line| {
            // `--flag   text`, or `--flag VALUE   text` / `--flag, -f   text`.
            let after = &line[long.len()..];
            if after.starts_with("  ") {
                Some(after.trim().to_string())
            } else {
                after
                    .split_once("  ")
                    .map(|(_, text)| text.trim().to_string())
            }
        })
        .unwrap_or_default()
}

/// The description of a flag of a subcommand whose help is `help`: from that help, else (a
/// client flag) from the overview; without a trailing comma or semicolon of a cut sentence.
fn description(flag: &Flag, help: &str) -> String {
    let text = describe(flag, help);
    let text = if text.is_empty() {
        describe(flag, OVERVIEW)
    } else {
        text
    };
    text.trim_end_matches([',', ';', ':']).to_string()
}

/// The help text of a subcommand.
fn help_of(name: &str) -> &'static str {
    SUBCOMMANDS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or("", |(_, help)| help)
}

/// Every flag a subcommand takes, its own then the client ones.
fn flags_of(spec: &Spec) -> Vec<Flag> {
    let mut all = spec.flags.to_vec();
    if spec.client {
        all.extend_from_slice(CLIENT_FLAGS);
    }
    all
}

/// Every spelling of every flag that takes a value.
fn value_names(flags: &[Flag], value: impl Fn(Value) -> bool) -> Vec<&'static str> {
    flags
        .iter()
        .filter(|f| value(f.value))
        .flat_map(|f| f.names.iter().copied())
        .collect()
}

/// Quotes a description for a single-quoted shell word.
fn quoted(text: &str) -> String {
    text.replace('\'', "'\\''")
}

fn bash() -> String {
    let names: Vec<&str> = FLAGS.iter().map(|s| s.name).collect();
    let client_values = value_names(CLIENT_FLAGS, |v| v != Value::None).join("|");
    let mut s = String::new();
    s.push_str("# bash completion for procwarden (made by `procwarden completions bash`)\n");
    s.push_str("_procwarden_ids() {\n");
    s.push_str(
        "    procwarden ${1:+--url \"$1\"} ps --wide 2>/dev/null | while read -r id _; do\n",
    );
    s.push_str("        [[ $id != ID ]] && printf '%s\\n' \"$id\"\n");
    s.push_str("    done\n}\n\n");
    s.push_str("_procwarden() {\n");
    s.push_str(
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n",
    );
    s.push_str("    local sub=\"\" url=\"\" i dashdash=0 rest=0\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
    s.push_str("        case \"${COMP_WORDS[i]}\" in\n");
    s.push_str("            --url) url=\"${COMP_WORDS[i+1]}\"; ((i++)) ;;\n");
    s.push_str(&format!("            {client_values}) ((i++)) ;;\n"));
    s.push_str("            --) [[ -n $sub ]] && dashdash=1 ;;\n");
    s.push_str("            -*) ;;\n");
    s.push_str(
        "            *) if [[ -z $sub ]]; then sub=\"${COMP_WORDS[i]}\"; else rest=1; fi ;;\n",
    );
    s.push_str("        esac\n    done\n");
    s.push_str("    if [[ -z $sub ]]; then\n");
    s.push_str(&format!(
        "        COMPREPLY=($(compgen -W \"{} help {} --help --version\" -- \"$cur\"))\n",
        names.join(" "),
        CLIENT_FLAGS
            .iter()
            .flat_map(|f| f.names.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    s.push_str("        return\n    fi\n");
    s.push_str("    case \"$sub\" in\n");
    for spec in FLAGS {
        let flags = flags_of(spec);
        s.push_str(&format!("        {})\n", spec.name));
        if spec.positional == Positional::CommandLine {
            s.push_str("            if ((dashdash || rest)); then\n");
            s.push_str("                COMPREPLY=($(compgen -c -- \"$cur\")); return\n");
            s.push_str("            fi\n");
        }
        s.push_str("            case \"$prev\" in\n");
        let files = value_names(&flags, |v| v == Value::File);
        if !files.is_empty() {
            s.push_str(&format!(
                "                {}) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n",
                files.join("|")
            ));
        }
        let dirs = value_names(&flags, |v| v == Value::Dir);
        if !dirs.is_empty() {
            s.push_str(&format!(
                "                {}) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n",
                dirs.join("|")
            ));
        }
        for flag in &flags {
            if let Value::OneOf(words) = flag.value {
                s.push_str(&format!(
                    "                {}) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;\n",
                    flag.names.join("|"),
                    words.join(" ")
                ));
            }
        }
        let texts = value_names(&flags, |v| v == Value::Text);
        if !texts.is_empty() {
            s.push_str(&format!("                {}) return ;;\n", texts.join("|")));
        }
        s.push_str("            esac\n");
        let mut words: Vec<&str> = flags.iter().flat_map(|f| f.names.iter().copied()).collect();
        words.push("--help");
        s.push_str("            if [[ $cur == -* ]]; then\n");
        s.push_str(&format!(
            "                COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return\n",
            words.join(" ")
        ));
        s.push_str("            fi\n");
        match spec.positional {
            Positional::Ids => s.push_str(
                "            COMPREPLY=($(compgen -W \"$(_procwarden_ids \"$url\")\" -- \"$cur\"))\n",
            ),
            Positional::OneOf(list) => s.push_str(&format!(
                "            ((rest)) || COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))\n",
                list.join(" ")
            )),
            Positional::CommandLine => {
                s.push_str("            COMPREPLY=($(compgen -c -- \"$cur\"))\n");
            }
            Positional::Nothing => {}
        }
        s.push_str("            ;;\n");
    }
    s.push_str(&format!(
        "        help) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")) ;;\n",
        names.join(" ")
    ));
    s.push_str("    esac\n}\n");
    s.push_str("complete -F _procwarden procwarden\n");
    s
}

fn zsh_value(flag: &Flag) -> &'static str {
    match flag.value {
        Value::None => "",
        Value::File => ":file:_files",
        Value::Dir => ":directory:_files -/",
        Value::Text | Value::OneOf(_) => ":value:",
    }
}

fn zsh() -> String {
    let mut s = String::new();
    s.push_str("#compdef procwarden\n");
    s.push_str("# zsh completion for procwarden (made by `procwarden completions zsh`)\n\n");
    s.push_str("_procwarden_ids() {\n");
    s.push_str("  local -a ids\n");
    s.push_str("  ids=(${${(f)\"$(procwarden ps --wide 2>/dev/null)\"}[2,-1]%% *})\n");
    s.push_str("  compadd -a ids\n}\n\n");
    s.push_str("_procwarden() {\n");
    s.push_str("  local -a commands\n");
    s.push_str("  commands=(\n");
    for spec in FLAGS {
        s.push_str(&format!(
            "    '{}:{}'\n",
            spec.name,
            quoted(&summary(spec.name).replace(':', "\\:"))
        ));
    }
    s.push_str("  )\n");
    // Skip the client options before the subcommand.
    s.push_str("  local i=2 sub\n");
    s.push_str("  while (( i < CURRENT )); do\n");
    s.push_str("    case ${words[i]} in\n");
    s.push_str(&format!(
        "      {}) (( i += 2 )) ;;\n",
        value_names(CLIENT_FLAGS, |v| v != Value::None).join("|")
    ));
    s.push_str("      -*) (( i++ )) ;;\n");
    s.push_str("      *) break ;;\n");
    s.push_str("    esac\n  done\n");
    s.push_str("  if (( i >= CURRENT )); then\n");
    s.push_str("    _describe -t commands 'procwarden command' commands\n");
    s.push_str("    return\n  fi\n");
    s.push_str("  sub=${words[i]}\n");
    s.push_str("  words=(${words[i,-1]}); (( CURRENT -= i - 1 ))\n");
    s.push_str("  case $sub in\n");
    for spec in FLAGS {
        let help = help_of(spec.name);
        s.push_str(&format!("    {})\n      _arguments -s \\\n", spec.name));
        for flag in flags_of(spec) {
            let text = quoted(&description(&flag, help).replace([':', '[', ']'], " "));
            let value = match flag.value {
                Value::OneOf(words) => format!(":value:({})", words.join(" ")),
                _ => zsh_value(&flag).to_string(),
            };
            if flag.names.len() == 1 {
                s.push_str(&format!("        '{}[{text}]{value}' \\\n", flag.names[0]));
            } else {
                s.push_str(&format!(
                    "        '({names})'{{{list}}}'[{text}]{value}' \\\n",
                    names = flag.names.join(" "),
                    list = flag.names.join(",")
                ));
            }
        }
        s.push_str("        '(-h --help)'{-h,--help}'[print the help]'");
        match spec.positional {
            Positional::Ids => s.push_str(" \\\n        '*:process id:_procwarden_ids'\n"),
            Positional::CommandLine => s.push_str(" \\\n        '*::command:_normal'\n"),
            Positional::OneOf(list) => {
                s.push_str(&format!(" \\\n        '1:word:({})'\n", list.join(" ")));
            }
            Positional::Nothing => s.push('\n'),
        }
        s.push_str("      ;;\n");
    }
    s.push_str("  esac\n}\n\n");
    s.push_str("if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n");
    s.push_str("  _procwarden \"$@\"\nelse\n  compdef _procwarden procwarden\nfi\n");
    s
}

fn fish() -> String {
    let mut s = String::new();
    s.push_str("# fish completion for procwarden (made by `procwarden completions fish`)\n");
    let names: Vec<&str> = FLAGS.iter().map(|spec| spec.name).collect();
    let none = format!("not __fish_seen_subcommand_from {} help", names.join(" "));
    s.push_str("complete -c procwarden -f\n");
    for spec in FLAGS {
        s.push_str(&format!(
            "complete -c procwarden -n '{none}' -a {} -d '{}'\n",
            spec.name,
            quoted(summary(spec.name))
        ));
    }
    s.push_str(&format!(
        "complete -c procwarden -n '{none}' -a help -d 'the help of a command'\n"
    ));
    for flag in CLIENT_FLAGS {
        s.push_str(&fish_flag(&none, flag, &describe(flag, OVERVIEW)));
    }
    for spec in FLAGS {
        let when = format!("__fish_seen_subcommand_from {}", spec.name);
        let help = help_of(spec.name);
        for flag in flags_of(spec) {
            s.push_str(&fish_flag(&when, &flag, &description(&flag, help)));
        }
        match spec.positional {
            Positional::Ids => s.push_str(&format!(
                "complete -c procwarden -n '{when}' -a '(procwarden ps --wide 2>/dev/null | string match -rv \"^ID \" | string replace -r \" .*\" \"\")'\n"
            )),
            Positional::OneOf(list) => s.push_str(&format!(
                "complete -c procwarden -n '{when}' -a '{}'\n",
                list.join(" ")
            )),
            Positional::CommandLine => s.push_str(&format!(
                "complete -c procwarden -n '{when}' -a '(__fish_complete_subcommand --fcs-skip=2)'\n"
            )),
            Positional::Nothing => {}
        }
    }
    s.push_str(&format!(
        "complete -c procwarden -n '__fish_seen_subcommand_from help' -a '{}'\n",
        names.join(" ")
    ));
    s
}

fn fish_flag(when: &str, flag: &Flag, text: &str) -> String {
    let mut line = format!("complete -c procwarden -n '{when}'");
    for name in flag.names {
        match name.strip_prefix("--") {
            Some(long) => line.push_str(&format!(" -l {long}")),
            None => line.push_str(&format!(" -s {}", name.trim_start_matches('-'))),
        }
    }
    match flag.value {
        Value::None => {}
        Value::File | Value::Dir => line.push_str(" -r -F"),
        Value::Text => line.push_str(" -r"),
        Value::OneOf(words) => line.push_str(&format!(" -r -a '{}'", words.join(" "))),
    }
    if !text.is_empty() {
        line.push_str(&format!(" -d '{}'", quoted(text)));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::super::args;
    use super::*;

    #[test]
    fn the_table_names_every_subcommand_and_every_flag_of_its_help() {
        let names: Vec<&str> = FLAGS.iter().map(|s| s.name).collect();
        let known: Vec<&str> = SUBCOMMANDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, known, "one FLAGS entry per subcommand, in order");
        for spec in FLAGS {
            assert!(
                !summary(spec.name).is_empty(),
                "{} has a summary",
                spec.name
            );
            let help = help_of(spec.name);
            let listed: Vec<&str> = flags_of(spec)
                .iter()
                .flat_map(|f| f.names.iter().copied())
                .collect();
            // Every --flag the help names is in the table.
            for word in help.split(|c: char| c.is_whitespace() || "[]|()`,".contains(c)) {
                let word = word.split('=').next().unwrap_or_default();
                if word.starts_with("--") && word.len() > 2 && word != "--help" {
                    assert!(
                        listed.contains(&word),
                        "{}: {word} is not in FLAGS",
                        spec.name
                    );
                }
            }
            // Every flag in the table is named in the help (or the overview, for client
            // flags) and accepted by the parser.
            for flag in flags_of(spec) {
                let long = flag.names[0];
                assert!(
                    help.contains(long) || OVERVIEW.contains(long),
                    "{}: {long} is not in its help",
                    spec.name
                );
                let mut words = vec![spec.name.to_string(), long.to_string()];
                if flag.value != Value::None {
                    words.push(
                        match (spec.name, long, flag.value) {
                            (_, _, Value::OneOf(list)) => list[0],
                            (_, "--url", _) => "http://127.0.0.1:1",
                            (_, "--timeout" | "--interrupt-grace", _) => "1s",
                            (_, "--env", _) => "A=1",
                            (
                                _,
                                "--limit"
                                | "--max-running"
                                | "--max-connections"
                                | "--max-exited"
                                | "--max-tracked"
                                | "--child-oom-score-adj"
                                | "--child-nice",
                                _,
                            ) => "3",
                            _ => "/tmp",
                        }
                        .to_string(),
                    );
                }
                match spec.positional {
                    Positional::Ids => words.push("abcd".into()),
                    Positional::CommandLine => words.extend(["--".into(), "true".into()]),
                    Positional::OneOf(list) => words.insert(1, list[0].into()),
                    Positional::Nothing => {}
                }
                if let Err(e) = args::parse(&words) {
                    assert!(
                        !e.to_string().contains("unknown option"),
                        "{words:?} is refused: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn descriptions_come_from_the_help() {
        assert_eq!(
            summary("exec"),
            "run a command, print its output, exit with its status"
        );
        assert_eq!(summary("ps"), "list processes");
        let wait = Flag {
            names: &["--wait"],
            value: Value::None,
        };
        assert_eq!(
            describe(&wait, help_of("output")),
            "wait until the process exits, then print its output"
        );
        let listen = Flag {
            names: &["--listen"],
            value: Value::Text,
        };
        assert!(describe(&listen, help_of("serve")).starts_with("HOST:PORT (default"));
        for shell in ["bash", "zsh", "fish"] {
            let text = script(shell);
            for spec in FLAGS {
                assert!(text.contains(spec.name), "{shell}: {}", spec.name);
            }
            assert!(text.contains("detach-on-interrupt"), "{shell}");
        }
    }
}
