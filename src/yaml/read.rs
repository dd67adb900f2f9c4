//! Reads Kubernetes objects from YAML the way `kubectl apply -f` does (see [`super::resolve`]),
//! from the parser's events rather than through a tree library, so that each scalar's style is
//! known (only plain ones are resolved) and so that hostile input is refused early: nesting
//! deeper than [`MAX_DEPTH`] stops at once, and aliases may not expand past [`MAX_NODES`].
//!
//! Where kubectl would quietly pick one of two readings, this refuses instead: a key written
//! twice in one mapping is an error here (kubectl keeps the last one).

use super::resolve::{CoreTag, Scalar, resolve};
use crate::error::InputError;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_norway::{Mapping, Value};
use std::collections::{HashMap, HashSet};

/// Deeper than any Kubernetes object (a ClusterClass with patches is about 12 levels); the
/// limit stops pathological input (`[[[[...`) before it costs time.
pub(crate) const MAX_DEPTH: usize = 100;

/// Nodes one document may hold once aliases are expanded ("billion laughs").
pub(crate) const MAX_NODES: usize = 1_000_000;

/// Every document of a YAML stream, as JSON-like values (mapping keys are strings), each with
/// the line it starts on.
pub(crate) fn read_documents(text: &str, source: &str) -> Result<Vec<(Value, usize)>, InputError> {
    let mut reader = Reader {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        documents: Vec::new(),
        document_line: 1,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let line = e.marker().line();
            // The scanner's own limit on `[` / `{` nesting (255) comes before ours.
            if e.info().contains("recursion limit") {
                return reader.too_deep(line);
            }
            InputError::new(
                source,
                Some(line as u64),
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        reader.event(event, span)?;
    }
    Ok(reader.documents)
}

struct Reader<'s> {
    source: &'s str,
    stack: Vec<Frame>,
    /// anchor id → (value, its depth, its node count).
    anchors: HashMap<usize, (Value, usize, usize)>,
    nodes: usize,
    documents: Vec<(Value, usize)>,
    document_line: usize,
}

struct Frame {
    kind: FrameKind,
    anchor: usize,
    /// Height and node count of what is inside so far, so that an anchor knows its size
    /// without walking the tree again.
    height: usize,
    nodes: usize,
}

enum FrameKind {
    Sequence(Vec<Value>),
    Mapping {
        map: Mapping,
        /// Keys written in this mapping (not merged in), to refuse duplicates.
        written: HashSet<String>,
        key: Option<PendingKey>,
        line: usize,
    },
}

enum PendingKey {
    Key(String, usize),
    Merge(usize),
}

/// A finished node: its value, and what it can be as a key.
struct Node {
    value: Value,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Scalar,
    /// A plain `<<`.
    Merge,
    Collection,
}

impl Reader<'_> {
    fn error(&self, line: usize, message: impl Into<String>) -> InputError {
        InputError::new(self.source, Some(line as u64), message.into())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), InputError> {
        let line = span.start.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = self.core_tag(tag.as_deref(), line)?;
                let scalar = resolve(&text, style == ScalarStyle::Plain, tag)
                    .map_err(|e| self.error(line, e.0))?;
                self.count(1, line)?;
                let shape = if scalar == Scalar::Merge {
                    Shape::Merge
                } else {
                    Shape::Scalar
                };
                let node = Node {
                    value: scalar.into_value(),
                    shape,
                };
                self.finish(node, anchor, (1, 1), line)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(FrameKind::Sequence(Vec::new()), anchor, line)
            }
            Event::MappingStart(anchor, _) => self.open(
                FrameKind::Mapping {
                    map: Mapping::new(),
                    written: HashSet::new(),
                    key: None,
                    line,
                },
                anchor,
                line,
            ),
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().expect("the parser balances events");
                let value = match frame.kind {
                    FrameKind::Sequence(items) => Value::Sequence(items),
                    FrameKind::Mapping { map, .. } => Value::Mapping(map),
                };
                let node = Node {
                    value,
                    shape: Shape::Collection,
                };
                let size = (frame.height + 1, frame.nodes + 1);
                self.finish(node, frame.anchor, size, line)
            }
            Event::Alias(id) => {
                let Some((value, height, nodes)) = self.anchors.get(&id).cloned() else {
                    return Err(self.error(line, "an alias to an unknown anchor"));
                };
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(self.too_deep(line));
                }
                self.count(nodes, line)?;
                let shape = match &value {
                    Value::Mapping(_) | Value::Sequence(_) => Shape::Collection,
                    _ => Shape::Scalar,
                };
                self.finish(Node { value, shape }, 0, (height, nodes), line)
            }
            Event::DocumentEnd => {
                self.anchors.clear();
                self.nodes = 0;
                Ok(())
            }
            Event::DocumentStart(_) => {
                self.document_line = line;
                Ok(())
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(()),
        }
    }

    fn open(&mut self, kind: FrameKind, anchor: usize, line: usize) -> Result<(), InputError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.too_deep(line));
        }
        self.count(1, line)?;
        self.stack.push(Frame {
            kind,
            anchor,
            height: 0,
            nodes: 0,
        });
        Ok(())
    }

    fn too_deep(&self, line: usize) -> InputError {
        self.error(
            line,
            format!(
                "nested more than {MAX_DEPTH} levels deep; no Kubernetes object is, so this input is refused"
            ),
        )
    }

    fn count(&mut self, nodes: usize, line: usize) -> Result<(), InputError> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                line,
                format!(
                    "aliases expand this document past {MAX_NODES} nodes; refused (a \"billion laughs\" document?)"
                ),
            ));
        }
        Ok(())
    }

    /// Tags go-yaml v2 honours; others (`!foo`) are ignored, as kubectl ignores them.
    fn core_tag(&self, tag: Option<&Tag>, line: usize) -> Result<Option<CoreTag>, InputError> {
        let Some(tag) = tag else { return Ok(None) };
        let full = format!("{}{}", tag.handle, tag.suffix);
        match full.strip_prefix("tag:yaml.org,2002:") {
            Some(suffix) => CoreTag::from_suffix(suffix)
                .map(Some)
                .ok_or_else(|| self.error(line, format!("`!!{suffix}` is not a tag for a scalar"))),
            None => Ok(None),
        }
    }

    /// Puts a finished node into its parent. `size`: its (height, node count).
    fn finish(
        &mut self,
        node: Node,
        anchor: usize,
        size: (usize, usize),
        line: usize,
    ) -> Result<(), InputError> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.value.clone(), size.0, size.1));
        }
        let source = self.source;
        let error = |message: String| InputError::new(source, Some(line as u64), message);
        let Some(parent) = self.stack.last_mut() else {
            self.documents.push((node.value, self.document_line));
            return Ok(());
        };
        parent.height = parent.height.max(size.0);
        parent.nodes += size.1;
        match &mut parent.kind {
            FrameKind::Sequence(items) => items.push(node.value),
            FrameKind::Mapping {
                key: key @ None, ..
            } => {
                *key = Some(match node.shape {
                    Shape::Merge => PendingKey::Merge(line),
                    Shape::Collection => {
                        return Err(error(
                            "a mapping or sequence used as a mapping key; Kubernetes objects have string keys".into(),
                        ));
                    }
                    Shape::Scalar => PendingKey::Key(
                        scalar_of(node.value).into_key().ok_or_else(|| {
                            error("a null mapping key (kubectl refuses it)".into())
                        })?,
                        line,
                    ),
                });
            }
            FrameKind::Mapping {
                map,
                written,
                key: key @ Some(_),
                line: map_line,
            } => match key.take().expect("matched Some") {
                PendingKey::Key(name, key_line) => {
                    if !written.insert(name.clone()) {
                        return Err(InputError::new(
                            source,
                            Some(key_line as u64),
                            format!(
                                "key `{name}` appears twice in the mapping that starts on line {map_line}; kubectl would silently keep the last one, so say which you mean"
                            ),
                        ));
                    }
                    map.insert(Value::String(name), node.value);
                }
                // go-yaml v2 merges in place: later keys override merged ones, and merged
                // keys override earlier ones (checked against kubectl).
                PendingKey::Merge(merge_line) => {
                    let sources = match node.value {
                        Value::Mapping(m) => vec![m],
                        Value::Sequence(items) => items
                            .into_iter()
                            .rev()
                            .map(|item| match item {
                                Value::Mapping(m) => Ok(m),
                                _ => Err(()),
                            })
                            .collect::<Result<Vec<_>, ()>>()
                            .map_err(|()| {
                                InputError::new(
                                    source,
                                    Some(merge_line as u64),
                                    "`<<` merges mappings; this sequence holds something else",
                                )
                            })?,
                        _ => {
                            return Err(InputError::new(
                                source,
                                Some(merge_line as u64),
                                "`<<` must be followed by a mapping or a list of mappings",
                            ));
                        }
                    };
                    for m in sources {
                        for (k, v) in m {
                            map.insert(k, v);
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

/// A scalar value read back, to be made a key.
fn scalar_of(v: Value) -> Scalar {
    match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(b),
        Value::Number(n) => n
            .as_i64()
            .map(Scalar::Int)
            .or_else(|| n.as_u64().map(Scalar::Uint))
            .unwrap_or_else(|| Scalar::Float(n.as_f64().unwrap_or_default())),
        Value::String(s) => Scalar::Str(s),
        _ => Scalar::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Value {
        let mut docs = read_documents(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 1);
        docs.remove(0).0
    }

    /// Keys sorted, as kubectl prints them.
    fn json(v: &Value) -> String {
        serde_json::to_value(v).unwrap().to_string()
    }

    fn refused(text: &str) -> InputError {
        read_documents(text, "t.yaml").expect_err("refused")
    }

    /// The expectations are kubectl 1.37's JSON for the same input.
    #[test]
    fn merge_keys_as_go_yaml_v2_applies_them() {
        let v = read(
            "base: &b {x: 1, z: 2}\nother: &o {x: 5, w: 6}\nm:\n  z: 3\n  <<: *b\nk:\n  <<: [*b, *o]\n  x: 9\nj:\n  <<: [*b, *o]\nq:\n  \"<<\": quoted\n",
        );
        assert_eq!(json(&v["m"]), r#"{"x":1,"z":2}"#);
        assert_eq!(json(&v["k"]), r#"{"w":6,"x":9,"z":2}"#);
        assert_eq!(json(&v["j"]), r#"{"w":6,"x":1,"z":2}"#);
        assert_eq!(json(&v["q"]), r#"{"<<":"quoted"}"#);
    }

    #[test]
    fn keys_and_values_resolved_like_kubectl() {
        let v =
            read("y: ykey\nn: y\n1: one\na: yes\nb: '0123'\nc: 0123\nd: |\n  on\ne: !!str 12\n");
        assert_eq!(
            json(&v),
            r#"{"1":"one","a":true,"b":"0123","c":83,"d":"on\n","e":"12","false":true,"true":"ykey"}"#
        );
    }

    #[test]
    fn line_numbers_point_at_the_problem() {
        let e = refused("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("`c` appears twice"), "{e}");
        let e = refused("a: 1\nb: [1, 2\n");
        assert!(
            e.line.is_some() && e.to_string().contains("invalid YAML"),
            "{e}"
        );
        let e = refused("a: 1\nb: .inf\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = refused("a:\n  ~: 1\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = refused("a: !!int x\n");
        assert_eq!(e.line, Some(1), "{e}");
        let e = refused("a:\n  <<: 3\n");
        assert!(e.to_string().contains("<<"), "{e}");
        let e = refused("? [a]\n: 1\n");
        assert!(e.to_string().contains("mapping key"), "{e}");
    }

    #[test]
    fn nesting_past_the_limit_is_refused_where_it_happens() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        read(&ok);
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = refused(&deep);
        assert!(e.to_string().contains("nested more than"), "{e}");
        let block: String = (0..200)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let e = refused(&block);
        assert_eq!(e.line, Some(MAX_DEPTH as u64 + 1), "{e}");
        // An alias may not carry a deep value deeper than the limit either.
        let half = MAX_DEPTH / 2 + 1;
        let aliased = format!(
            "a: &x {}1{}\nb: {}*x{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        assert!(refused(&aliased).to_string().contains("nested more than"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        assert!(refused(&text).to_string().contains("billion laughs"));
    }

    #[test]
    fn documents_and_their_lines() {
        let docs = read_documents("a: 1\n---\nb: 2\n---\n", "t.yaml").unwrap();
        let lines: Vec<usize> = docs.iter().map(|(_, l)| *l).collect();
        assert_eq!(&lines[..2], &[1, 2]);
        // Anchors are per document.
        assert!(read_documents("a: &x 1\n---\nb: *x\n", "t.yaml").is_err());
    }
}
