//! Resource-name (RN) matching, SPEC §2.2.
//!
//! An RN is a list of `type/key` segments joined by `:`; a segment may carry
//! comma-separated tags after a `;` (`project/web;team-a,beta`). The semantics
//! follow FeatBit's `RNMatcher` (modules/back-end/src/Domain/Resources/RNMatcher.cs),
//! but the `*` glob is a linear chunk matcher instead of a cached regex.

/// Does `pattern` (from a statement) match `resource` (the thing being accessed)?
///
/// - neither may be empty;
/// - the pattern may have fewer segments than the resource (it then matches as a
///   prefix: `project/foo` matches `project/foo:env/prod`), never more;
/// - each pattern segment's path must match the resource segment's path, where `*`
///   matches any run of characters and everything else is literal and case-sensitive;
/// - if the pattern segment has tags, the resource segment must have tags and at
///   least one pattern tag (wildcards allowed) must match at least one resource tag.
///
/// Splitting is done with byte scans over borrowed slices, so a call allocates nothing. This
/// runs for every statement on every verified request, where `str::split` with a `char`
/// pattern costs more to set up than these short scans; every delimiter is ASCII, so slicing
/// at its byte index is always on a character boundary.
pub fn rn_matches(pattern: &str, resource: &str) -> bool {
    if pattern.is_empty() || resource.is_empty() {
        return false;
    }

    // Walking both lists together checks the segment count and the segments in one
    // pass: running out of resource segments first means the pattern is longer.
    let mut resource_segments = split(resource, b':');
    split(pattern, b':').all(|pattern_segment| {
        resource_segments
            .next()
            .is_some_and(|resource_segment| segment_matches(pattern_segment, resource_segment))
    })
}

fn segment_matches(pattern: &str, resource: &str) -> bool {
    let (pattern_path, pattern_tags) = split_tags(pattern);
    let (resource_path, resource_tags) = split_tags(resource);

    if !glob_matches(pattern_path, resource_path) {
        return false;
    }

    // A pattern without tags ignores the resource's tags.
    let Some(pattern_tags) = pattern_tags else {
        return true;
    };
    // A pattern with tags needs a resource with tags.
    let Some(resource_tags) = resource_tags else {
        return false;
    };

    // OR semantics: one pattern tag matching one resource tag is enough. The cost is
    // (pattern tags × resource tags) small globs, bounded by the RN length limits.
    split(pattern_tags, b',').any(|pattern_tag| {
        split(resource_tags, b',').any(|resource_tag| glob_matches(pattern_tag, resource_tag))
    })
}

/// Does `outer` match every resource that `inner` matches? Both are patterns. Used to decide
/// whether one grant covers another (`policy::layers`), so it must never say yes wrongly; it may
/// say no to a few exotic pairs that are in fact covered.
///
/// `inner`'s text is matched by `outer` with `inner`'s `*` taken literally: only a `*` of
/// `outer` can absorb it, and whatever `inner`'s `*` stands for, that `*` absorbs it too. Tags
/// are stricter than in [`rn_matches`]: every tag of `inner` must be matched by a tag of
/// `outer`, since a resource may carry any one of `inner`'s tags.
pub fn pattern_covers(outer: &str, inner: &str) -> bool {
    if outer.is_empty() || inner.is_empty() {
        return false;
    }
    let mut inner_segments = split(inner, b':');
    split(outer, b':').all(|outer_segment| {
        inner_segments.next().is_some_and(|inner_segment| {
            let (outer_path, outer_tags) = split_tags(outer_segment);
            let (inner_path, inner_tags) = split_tags(inner_segment);
            glob_matches(outer_path, inner_path)
                && match (outer_tags, inner_tags) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(outer_tags), Some(inner_tags)) => split(inner_tags, b',').all(|tag| {
                        split(outer_tags, b',').any(|outer_tag| glob_matches(outer_tag, tag))
                    }),
                }
        })
    })
}

/// Could some resource match both patterns? Answers no only when it is certain, so a deny that
/// might touch a grant is always counted (`policy::layers`). Tags are assumed to overlap.
pub fn patterns_may_overlap(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    // A shorter pattern matches as a prefix: only the segments both have can tell them apart.
    split(a, b':')
        .zip(split(b, b':'))
        .all(|(a_segment, b_segment)| {
            globs_may_overlap(split_tags(a_segment).0, split_tags(b_segment).0)
        })
}

/// Could one text match both globs? Certain answers where a side has no `*`; otherwise the
/// literal text before the first `*` and after the last must be compatible.
fn globs_may_overlap(a: &str, b: &str) -> bool {
    match (a.contains('*'), b.contains('*')) {
        (false, false) => a == b,
        (true, false) => glob_matches(a, b),
        (false, true) => glob_matches(b, a),
        (true, true) => {
            let (a_first, a_last) = outer_chunks(a);
            let (b_first, b_last) = outer_chunks(b);
            (a_first.starts_with(b_first) || b_first.starts_with(a_first))
                && (a_last.ends_with(b_last) || b_last.ends_with(a_last))
        }
    }
}

/// The literal text before the first `*` and after the last one.
fn outer_chunks(glob: &str) -> (&str, &str) {
    let first = split_once(glob, b'*').map_or(glob, |(first, _)| first);
    let last = glob
        .bytes()
        .rposition(|b| b == b'*')
        .map_or(glob, |at| &glob[at + 1..]);
    (first, last)
}

/// Splits a segment into its path and its tag list, `None` when it has no tags.
///
/// Edge cases taken from FeatBit's `RNMatcher`, which SPEC §2.2 does not spell out:
/// - an empty tag list (`flag/x;`) counts as no tags at all, on either side, so the
///   pattern `flag/*;` matches `flag/x` and the pattern `flag/*;beta` does not match
///   `flag/x;`;
/// - only the text between the first and a second `;` is the tag list; anything after
///   a second `;` is ignored (FeatBit splits on every `;` and reads part 1 only);
/// - empty tags inside a list (`a,,b`) are kept, so an empty pattern tag matches an
///   empty resource tag, as FeatBit's split does.
fn split_tags(segment: &str) -> (&str, Option<&str>) {
    match split_once(segment, b';') {
        None => (segment, None),
        Some((path, rest)) => {
            let tags = split_once(rest, b';').map_or(rest, |(tags, _ignored)| tags);
            (path, (!tags.is_empty()).then_some(tags))
        }
    }
}

/// `*` matches any run of characters (including none); all else is literal.
///
/// Linear time, no backtracking: the pattern is cut at each `*` into literal chunks.
/// The first chunk must be a prefix of the text and the last one a suffix (of what
/// remains); each middle chunk is then taken at its leftmost occurrence, which is
/// always safe because any later occurrence leaves less room for the chunks after it.
/// `str::find` is linear and each search starts where the previous match ended.
///
/// Unlike FeatBit's regex (`.` there stops at a newline and `$` also matches before
/// a final newline), `*` here matches every character, as SPEC §2.2 states.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = split_once(pattern, b'*') else {
        return pattern == text;
    };
    let (middle, last) = match rest.bytes().rposition(|b| b == b'*') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => ("", rest),
    };

    let Some(remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some(mut window) = remaining.strip_suffix(last) else {
        return false;
    };

    for chunk in split(middle, b'*').filter(|chunk| !chunk.is_empty()) {
        match window.find(chunk) {
            Some(at) => window = &window[at + chunk.len()..],
            None => return false,
        }
    }
    true
}

/// `text.split_once(delimiter)` for an ASCII delimiter.
fn split_once(text: &str, delimiter: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == delimiter)?;
    Some((&text[..at], &text[at + 1..]))
}

/// `text.split(delimiter)` for an ASCII delimiter: empty pieces included, as `str::split`.
fn split(text: &str, delimiter: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match split_once(current, delimiter) {
            Some((piece, tail)) => {
                rest = Some(tail);
                Some(piece)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
