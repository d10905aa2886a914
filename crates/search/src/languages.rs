//! Languages by file name and extension, under linguist's names (as `lang:` takes them).

/// (linguist name, extensions, exact file names). Lookups are case-insensitive on the name.
const LANGUAGES: &[(&str, &[&str], &[&str])] = &[
    ("Rust", &["rs"], &[]),
    ("Go", &["go"], &[]),
    (
        "Python",
        &["py", "pyi", "pyw"],
        &["SConstruct", "SConscript"],
    ),
    ("JavaScript", &["js", "mjs", "cjs", "jsx"], &[]),
    ("TypeScript", &["ts", "mts", "cts", "tsx"], &[]),
    ("Java", &["java"], &[]),
    ("Kotlin", &["kt", "kts"], &[]),
    ("Scala", &["scala", "sc"], &[]),
    ("C", &["c", "h"], &[]),
    (
        "C++",
        &[
            "cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "inl", "ipp",
        ],
        &[],
    ),
    ("C#", &["cs", "csx"], &[]),
    ("Objective-C", &["m"], &[]),
    ("Swift", &["swift"], &[]),
    ("Ruby", &["rb", "rake", "gemspec"], &["Rakefile", "Gemfile"]),
    ("PHP", &["php", "phtml"], &[]),
    ("Perl", &["pl", "pm"], &[]),
    (
        "Shell",
        &["sh", "bash", "zsh", "ksh"],
        &[".bashrc", ".zshrc", ".profile"],
    ),
    ("PowerShell", &["ps1", "psm1"], &[]),
    ("Haskell", &["hs", "lhs"], &[]),
    ("OCaml", &["ml", "mli"], &[]),
    ("Elixir", &["ex", "exs"], &[]),
    ("Erlang", &["erl", "hrl"], &[]),
    ("Clojure", &["clj", "cljs", "cljc", "edn"], &[]),
    ("Lua", &["lua"], &[]),
    ("R", &["r"], &[]),
    ("Julia", &["jl"], &[]),
    ("Dart", &["dart"], &[]),
    ("Zig", &["zig"], &[]),
    ("Nix", &["nix"], &[]),
    ("HTML", &["html", "htm", "xhtml"], &[]),
    ("CSS", &["css"], &[]),
    ("SCSS", &["scss"], &[]),
    ("Vue", &["vue"], &[]),
    ("Svelte", &["svelte"], &[]),
    ("JSON", &["json", "jsonc"], &[]),
    ("YAML", &["yml", "yaml"], &[]),
    ("TOML", &["toml"], &["Cargo.lock"]),
    ("XML", &["xml", "xsd", "xsl", "plist"], &[]),
    ("Markdown", &["md", "markdown", "mdx"], &[]),
    ("reStructuredText", &["rst"], &[]),
    ("Text", &["txt"], &[]),
    ("SQL", &["sql"], &[]),
    ("Protocol Buffer", &["proto"], &[]),
    ("GraphQL", &["graphql", "gql"], &[]),
    (
        "Dockerfile",
        &["dockerfile"],
        &["Dockerfile", "Containerfile"],
    ),
    (
        "Makefile",
        &["mk", "mak"],
        &["Makefile", "GNUmakefile", "makefile"],
    ),
    ("CMake", &["cmake"], &["CMakeLists.txt"]),
    (
        "Starlark",
        &["bzl", "star"],
        &["BUILD", "BUILD.bazel", "WORKSPACE"],
    ),
    ("Terraform", &["tf", "tfvars"], &[]),
    ("Groovy", &["groovy", "gradle"], &[]),
    ("Fortran", &["f", "f90", "f95", "for"], &[]),
    ("Assembly", &["asm", "s"], &[]),
    ("Vim Script", &["vim"], &[".vimrc"]),
    ("Emacs Lisp", &["el"], &[]),
    ("Solidity", &["sol"], &[]),
    ("WebAssembly", &["wat", "wast"], &[]),
];

/// A language known to `lang:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language(usize);

impl Language {
    /// Finds a language by its linguist name or alias (case-insensitive), or by an extension.
    pub fn named(name: &str) -> Option<Language> {
        let lower = name.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "golang" => "go",
            "js" => "javascript",
            "ts" => "typescript",
            "py" => "python",
            "rb" => "ruby",
            "cpp" => "c++",
            "csharp" => "c#",
            "bash" | "sh" => "shell",
            "md" => "markdown",
            "yml" => "yaml",
            "proto" | "protobuf" => "protocol buffer",
            "make" => "makefile",
            "docker" => "dockerfile",
            other => other,
        };
        LANGUAGES
            .iter()
            .position(|(n, _, _)| {
                n.eq_ignore_ascii_case(alias) || n.replace(' ', "-").eq_ignore_ascii_case(alias)
            })
            .or_else(|| {
                LANGUAGES
                    .iter()
                    .position(|(_, extensions, _)| extensions.contains(&alias))
            })
            .map(Language)
    }

    pub fn name(self) -> &'static str {
        LANGUAGES[self.0].0
    }

    /// The language of a file, by exact name first, then by extension.
    pub fn of_path(path: &str) -> Option<Language> {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        if let Some(i) = LANGUAGES
            .iter()
            .position(|(_, _, names)| names.contains(&file_name))
        {
            return Some(Language(i));
        }
        let (_, extension) = file_name.rsplit_once('.')?;
        let extension = extension.to_ascii_lowercase();
        LANGUAGES
            .iter()
            .position(|(_, extensions, _)| extensions.contains(&extension.as_str()))
            .map(Language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_paths() {
        assert_eq!(Language::named("rust").map(Language::name), Some("Rust"));
        assert_eq!(Language::named("golang").map(Language::name), Some("Go"));
        assert_eq!(Language::named("C++").map(Language::name), Some("C++"));
        assert_eq!(
            Language::named("tsx").map(Language::name),
            Some("TypeScript")
        );
        assert!(Language::named("klingon").is_none());
        assert_eq!(
            Language::named("protocol-buffer").map(Language::name),
            Some("Protocol Buffer")
        );
        assert_eq!(
            Language::named("Objective-C").map(Language::name),
            Some("Objective-C")
        );
        assert_eq!(
            Language::of_path("src/main.RS").map(Language::name),
            Some("Rust")
        );
        assert_eq!(
            Language::of_path("a/Makefile").map(Language::name),
            Some("Makefile")
        );
        assert_eq!(
            Language::of_path("a/CMakeLists.txt").map(Language::name),
            Some("CMake")
        );
        assert_eq!(Language::of_path("README"), None);
    }
}
