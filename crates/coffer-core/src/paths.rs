//! Path tables: an engine declares its paths as data (pattern, operations,
//! help), and one matcher routes requests and answers 405 for other operations.

use matchit::Router;

use crate::logical::{LogicalError, Operation};

/// One row of a path table.
pub struct PathSpec<R: Copy + 'static> {
    /// A `matchit` pattern relative to the mount, e.g. `"keys/{name}"`.
    pub pattern: &'static str,
    /// Operations the path serves.
    pub operations: &'static [Operation],
    /// Which handler serves it.
    pub route: R,
    /// One line of help.
    pub help: &'static str,
}

/// A compiled path table.
pub struct PathTable<R: Copy + 'static> {
    specs: &'static [PathSpec<R>],
    router: Router<usize>,
}

/// A matched path: its route and captured parameters.
pub struct Matched<R> {
    /// The route.
    pub route: R,
    /// Named captures, in pattern order.
    pub params: Vec<(String, String)>,
}

impl<R> Matched<R> {
    /// A captured parameter, or `""`.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

impl<R: Copy + 'static> PathTable<R> {
    /// Compiles a table; a bad pattern is a programming error reported at start.
    pub fn new(specs: &'static [PathSpec<R>]) -> Result<Self, String> {
        let mut router = Router::new();
        for (i, s) in specs.iter().enumerate() {
            router
                .insert(format!("/{}", s.pattern), i)
                .map_err(|e| format!("path table pattern {:?}: {e}", s.pattern))?;
        }
        Ok(Self { specs, router })
    }

    /// Finds the route for `path` and checks the operation is served there.
    pub fn route(&self, op: Operation, path: &str) -> Result<Matched<R>, LogicalError> {
        let lookup = format!("/{path}");
        let m = self
            .router
            .at(&lookup)
            .map_err(|_| LogicalError::UnsupportedPath)?;
        let spec = &self.specs[*m.value];
        let op_ok = spec
            .operations
            .iter()
            .any(|o| *o == op || (o.is_write() && op.is_write()));
        if !op_ok {
            return Err(LogicalError::UnsupportedOperation);
        }
        Ok(Matched {
            route: spec.route,
            params: m
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    /// The rows, for help output.
    pub fn specs(&self) -> &'static [PathSpec<R>] {
        self.specs
    }

    /// Every row without its handler, for `path-help`.
    pub fn docs(&self) -> Vec<PathDoc> {
        self.specs.iter().map(PathDoc::of).collect()
    }
}

/// A path table row as help shows it.
#[derive(Debug, Clone, Copy)]
pub struct PathDoc {
    /// The pattern, relative to the mount.
    pub pattern: &'static str,
    /// Operations served.
    pub operations: &'static [Operation],
    /// One line of help.
    pub help: &'static str,
}

impl PathDoc {
    fn of<R: Copy + 'static>(s: &PathSpec<R>) -> Self {
        Self {
            pattern: s.pattern,
            operations: s.operations,
            help: s.help,
        }
    }
}

/// What `path-help` shows for a mount: what it is and its paths.
#[derive(Debug, Clone, Default)]
pub struct MountHelp {
    /// A paragraph on the engine or auth method.
    pub description: &'static str,
    /// Its paths.
    pub paths: Vec<PathDoc>,
}
