//! A tiny YAML document model with a position on every node, built from granit-parser's events.
//!
//! The schema walker (`schema.rs`) needs more than serde gives: the line and column of every
//! key and value, whether a scalar was quoted (so a bare `no` meant as a string can be refused),
//! duplicate keys everywhere, and the chance to report *all* errors of a file at once. So the
//! parser's event stream is folded into this tree, with budgets against alias and depth bombs.

use granit_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// A 1-based line and column in the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Clone, Debug)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    /// A scalar with its text as written (after escapes) and whether it was quoted.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; keys are scalars (complex keys are refused while parsing).
    Map(Vec<(Key, Node)>),
}

#[derive(Clone, Debug)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

/// A problem found while parsing: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Limits against hostile or broken input (configs are tiny).
const MAX_NODES: usize = 20_000;
const MAX_DEPTH: usize = 32;

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, quoted: false } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. Duplicate keys are reported (all of them) but parsing goes on, so
/// that the caller can report schema errors too.
pub fn parse(text: &str) -> Result<(Node, Vec<ParseProblem>), ParseProblem> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let mut docs = 0;
    let mut root = None;
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            ParseProblem {
                pos: Pos {
                    line: m.line(),
                    col: m.col() + 1,
                },
                message: format!("invalid YAML: {}", e.info()),
                hint: Some("check the indentation and quoting around this point".into()),
            }
        })?;
        match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(..) => {
                docs += 1;
                if docs > 1 {
                    return Err(ParseProblem {
                        pos: Pos::of(&span),
                        message: "more than one YAML document in the file".into(),
                        hint: Some("a pipeline is one document: remove the second `---`".into()),
                    });
                }
            }
            other => {
                if let Some(node) = b.event(other, &span)? {
                    root = Some(node);
                }
            }
        }
    }
    let root = root.ok_or_else(|| ParseProblem {
        pos: Pos { line: 1, col: 1 },
        message: "the file is empty".into(),
        hint: Some("start from `shipit init`, or see the README's config reference".into()),
    })?;
    Ok((root, b.problems))
}

enum Open {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Key, Node)>, Option<Key>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    problems: Vec<ParseProblem>,
}

impl Builder {
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), ParseProblem> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(ParseProblem {
                pos,
                message: format!("the document expands to more than {MAX_NODES} nodes"),
                hint: Some("aliases that expand recursively are not allowed in a pipeline".into()),
            });
        }
        Ok(())
    }

    /// Feeds one event; returns the root once it is complete.
    fn event(&mut self, ev: Event<'_>, span: &Span) -> Result<Option<Node>, ParseProblem> {
        let pos = Pos::of(span);
        let node = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        quoted: !matches!(style, ScalarStyle::Plain),
                    },
                };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                node
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| ParseProblem {
                    pos,
                    message: "alias to an unknown anchor".into(),
                    hint: None,
                })?;
                let size = count_nodes(&node);
                self.count(size, pos)?;
                Node { pos, ..node }
            }
            Event::SequenceStart(_, anchor, _) => {
                self.open_check(pos)?;
                self.stack.push(Open::Seq(pos, anchor, Vec::new()));
                return Ok(None);
            }
            Event::MappingStart(_, anchor, _) => {
                self.open_check(pos)?;
                self.stack.push(Open::Map(pos, anchor, Vec::new(), None));
                return Ok(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(p, a, items)) => (
                        Node {
                            pos: p,
                            kind: Kind::Seq(items),
                        },
                        a,
                    ),
                    Some(Open::Map(p, a, entries, _)) => (
                        Node {
                            pos: p,
                            kind: Kind::Map(entries),
                        },
                        a,
                    ),
                    None => return Ok(None),
                };
                self.count(1, node.pos)?;
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                node
            }
            _ => return Ok(None),
        };
        self.attach(node)
    }

    fn open_check(&self, pos: Pos) -> Result<(), ParseProblem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ParseProblem {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                hint: None,
            });
        }
        Ok(())
    }

    fn attach(&mut self, node: Node) -> Result<Option<Node>, ParseProblem> {
        match self.stack.last_mut() {
            None => Ok(Some(node)),
            Some(Open::Seq(_, _, items)) => {
                items.push(node);
                Ok(None)
            }
            Some(Open::Map(_, _, entries, pending)) => match pending.take() {
                None => {
                    let Kind::Scalar { text, .. } = node.kind else {
                        return Err(ParseProblem {
                            pos: node.pos,
                            message: "a mapping key must be a plain name".into(),
                            hint: None,
                        });
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == text) {
                        self.problems.push(ParseProblem {
                            pos: node.pos,
                            message: format!(
                                "duplicate key `{text}` (first defined at line {})",
                                first.pos.line
                            ),
                            hint: Some("keep one of them: YAML keeps only one, silently".into()),
                        });
                    }
                    *pending = Some(Key {
                        name: text,
                        pos: node.pos,
                    });
                    Ok(None)
                }
                Some(key) => {
                    if !entries.iter().any(|(k, _)| k.name == key.name) {
                        entries.push((key, node));
                    }
                    Ok(None)
                }
            },
        }
    }
}

fn count_nodes(n: &Node) -> usize {
    match &n.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_nodes(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let (root, problems) = parse("a: 1\nb:\n  c: [x, 'y']\n").unwrap();
        assert!(problems.is_empty());
        let Kind::Map(entries) = root.kind else {
            panic!()
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Kind::Map(inner) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, col: 3 });
        let Kind::Seq(items) = &inner[0].1.kind else {
            panic!()
        };
        assert!(matches!(&items[1].kind, Kind::Scalar { text, quoted: true } if text == "y"));
        assert!(matches!(&items[0].kind, Kind::Scalar { quoted: false, .. }));
    }

    #[test]
    fn duplicates_are_reported_with_both_lines() {
        let (_, problems) = parse("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pos, Pos { line: 3, col: 1 });
        assert!(problems[0].message.contains("first defined at line 1"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            y.push_str(&format!(
                "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let err = parse(&y).unwrap_err();
        assert!(err.message.contains("expands to more than"), "{err:?}");
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn broken_yaml_has_a_position() {
        let err = parse("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("more than one")
        );
    }
}
