//! The `.npy` header: NumPy's Python dict literal, written byte for byte as NumPy 2 writes it and
//! parsed (a small subset of Python literals, with a nesting limit).

/// Deepest nesting of tuples, lists and dicts accepted in a `.npy` header.
const MAX_HEADER_DEPTH: usize = 8;

use super::tuple_shape;

/// A value in a `.npy` header (a small subset of Python literals).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Py {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl std::fmt::Display for Py {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Py::Str(s) => write!(f, "'{s}'"),
            Py::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Py::Int(i) => write!(f, "{i}"),
            Py::None => f.write_str("None"),
            Py::Tuple(v) => f.write_str(&tuple_shape(v)),
            Py::List(v) => {
                let parts: Vec<String> = v.iter().map(|p| p.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Py::Dict(v) => {
                let parts: Vec<String> = v.iter().map(|(k, x)| format!("{k}: {x}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Recursive-descent parser for the header literal, with a nesting limit.
struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected '{}' at byte {} of the header, found '{}'",
                c as char,
                self.i,
                x.escape_ascii()
            )),
            None => Err(format!("expected '{}' but the header ends", c as char)),
        }
    }

    /// Items up to `close`, separated by commas, with an optional trailing comma. Returns the
    /// items and whether a comma was seen (to tell `(8)` from `(8,)`).
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Py>, bool), String> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                _ => {
                    self.expect(close)?;
                    return Ok((items, comma));
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Py, String> {
        if depth > MAX_HEADER_DEPTH {
            return Err("the header is nested too deeply".to_string());
        }
        let Some(c) = self.peek() else {
            return Err("the header ends where a value was expected".to_string());
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Py::Dict(pairs));
                    }
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        _ => {
                            self.expect(b'}')?;
                            return Ok(Py::Dict(pairs));
                        }
                    }
                }
            }
            b'(' => {
                self.i += 1;
                let (mut items, comma) = self.items(b')', depth)?;
                if items.len() == 1 && !comma {
                    // `(x)` is just `x` in Python.
                    return Ok(items.remove(0));
                }
                Ok(Py::Tuple(items))
            }
            b'[' => {
                self.i += 1;
                Ok(Py::List(self.items(b']', depth)?.0))
            }
            b'\'' | b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err("unterminated string in the header".to_string()),
                        Some(&x) if x == c => {
                            self.i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&e) = self.s.get(self.i + 1) else {
                                return Err("unterminated string in the header".to_string());
                            };
                            out.push(e);
                            self.i += 2;
                        }
                        Some(&x) => {
                            out.push(x);
                            self.i += 1;
                        }
                    }
                }
                Ok(Py::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            b'0'..=b'9' => {
                let start = self.i;
                let mut v: u64 = 0;
                while let Some(&d) = self.s.get(self.i).filter(|d| d.is_ascii_digit()) {
                    v = v
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                        .ok_or_else(|| {
                            let end = self.s[start..]
                                .iter()
                                .position(|x| !x.is_ascii_digit())
                                .map_or(self.s.len(), |p| start + p);
                            format!(
                                "the integer {} does not fit 64 bits",
                                String::from_utf8_lossy(&self.s[start..end])
                            )
                        })?;
                    self.i += 1;
                }
                // Python 2 long suffix, seen in old .npy files.
                if matches!(self.s.get(self.i), Some(b'L' | b'l')) {
                    self.i += 1;
                }
                Ok(Py::Int(v))
            }
            _ => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_') {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Py::Bool(true)),
                    b"False" => Ok(Py::Bool(false)),
                    b"None" => Ok(Py::None),
                    _ => {
                        let end = (start + 12).min(self.s.len());
                        Err(format!(
                            "unexpected '{}' at byte {start} of the header",
                            self.s[start..end].trim_ascii_end().escape_ascii()
                        ))
                    }
                }
            }
        }
    }
}

/// The parsed `.npy` header.
#[derive(Debug)]
pub(super) struct NpyHeader {
    pub(super) descr: Py,
    pub(super) fortran_order: bool,
    pub(super) shape: Vec<u64>,
}

pub(super) fn parse_npy_dict(text: &[u8]) -> Result<NpyHeader, String> {
    let mut p = PyParser { s: text, i: 0 };
    let value = p.value(0)?;
    p.skip_ws();
    if p.i != text.len() {
        return Err(format!("unexpected bytes after the header dict at byte {}", p.i));
    }
    let Py::Dict(pairs) = value else {
        return Err(format!("the header is {value}, not a dict"));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in pairs {
        let slot = match &k {
            Py::Str(s) if s == "descr" => &mut descr,
            Py::Str(s) if s == "fortran_order" => &mut fortran,
            Py::Str(s) if s == "shape" => &mut shape,
            _ => {
                return Err(format!(
                    "unexpected key {k} in the header (only 'descr', 'fortran_order' and \
                     'shape' are allowed)"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("key {k} appears twice in the header"));
        }
        *slot = Some(v);
    }
    let descr = descr.ok_or("the header has no 'descr'")?;
    let fortran_order = match fortran.ok_or("the header has no 'fortran_order'")? {
        Py::Bool(b) => b,
        other => return Err(format!("'fortran_order' is {other}, not True or False")),
    };
    let shape = match shape.ok_or("the header has no 'shape'")? {
        Py::Tuple(items) | Py::List(items) => items
            .iter()
            .map(|d| match d {
                Py::Int(n) => Ok(*n),
                other => Err(format!("'shape' holds {other}, not an integer")),
            })
            .collect::<Result<Vec<u64>, String>>()?,
        other => return Err(format!("'shape' is {other}, not a tuple")),
    };
    Ok(NpyHeader { descr, fortran_order, shape })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parser() {
        let h = parse_npy_dict(b"{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }  \n")
            .unwrap();
        assert_eq!(h.descr, Py::Str(">f8".into()));
        assert!(h.fortran_order);
        assert_eq!(h.shape, vec![2, 3]);
        assert!(parse_npy_dict(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3L,)}").is_ok());
        for bad in [
            &b"{'descr': '<f4', 'fortran_order': False}"[..],
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (8)}",
            b"((((((((((((((((((((((((",
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            b"",
            b"{'descr",
        ] {
            assert!(parse_npy_dict(bad).is_err(), "{}", bad.escape_ascii());
        }
    }
}
