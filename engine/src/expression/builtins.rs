//! Names and parameter lists of the filters, functions and tests, resolved
//! when a template compiles. Unknown names compile and fail when evaluated,
//! as in Pebble, so a typo in a branch never taken does not break a flow.

macro_rules! builtins {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal [$($param:literal),*]),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant,)*
            Unknown(Box<str>),
        }

        impl $name {
            pub(crate) fn from_name(name: &str) -> Self {
                match name {
                    $($text => Self::$variant,)*
                    other => Self::Unknown(other.into()),
                }
            }

            /// Declared parameter names, in positional order.
            pub(crate) fn params(&self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant => &[$($param),*],)*
                    Self::Unknown(_) => &[],
                }
            }

            #[allow(dead_code, reason = "not every kind names itself in messages")]
            pub(crate) fn name(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Unknown(name) => name,
                }
            }
        }
    };
}

builtins! {
    /// `value | filter(args)`.
    Filter {
        ToJson = "toJson" [],
        Json = "json" [],
        Default = "default" ["default"],
        Upper = "upper" [],
        Lower = "lower" [],
        Capitalize = "capitalize" [],
        Title = "title" [],
        Trim = "trim" [],
        Length = "length" [],
        First = "first" [],
        Last = "last" [],
        Join = "join" ["separator"],
        Split = "split" ["delimiter", "limit"],
        Replace = "replace" ["replace_pairs", "replacement"],
        Slice = "slice" ["fromIndex", "toIndex"],
        Keys = "keys" [],
        Values = "values" [],
        Number = "number" ["type"],
        Abs = "abs" [],
        Round = "round" ["precision", "method"],
        Slugify = "slugify" [],
        StartsWith = "startsWith" ["value"],
        EndsWith = "endsWith" ["value"],
        Date = "date" ["format", "timeZone", "existingFormat", "locale"],
        DateAdd = "dateAdd" ["amount", "unit", "format", "timeZone", "existingFormat", "locale"],
        Timestamp = "timestamp" ["timeZone", "existingFormat"],
        Jq = "jq" ["expression"],
        Reverse = "reverse" [],
        Sort = "sort" [],
        Rsort = "rsort" [],
        Merge = "merge" ["items"],
        SubstringBefore = "substringBefore" ["separator"],
        SubstringBeforeLast = "substringBeforeLast" ["separator"],
        SubstringAfter = "substringAfter" ["separator"],
        SubstringAfterLast = "substringAfterLast" ["separator"],
        Abbreviate = "abbreviate" ["length"],
        Flatten = "flatten" [],
        Chunk = "chunk" ["size"],
    }
}

builtins! {
    /// `name(args)`.
    Function {
        FromJson = "fromJson" ["json"],
        Json = "json" ["json"],
        Now = "now" ["format", "timeZone", "existingFormat", "locale"],
        Range = "range" ["start", "end", "increment"],
        Max = "max" [],
        Min = "min" [],
        CurrentEachOutput = "currentEachOutput" ["outputs"],
        Render = "render" ["toRender", "recursive"],
        RenderOnce = "renderOnce" ["toRender"],
        // Answered by the context (`Context::function`), with their
        // arguments in these positions.
        Kv = "kv" ["key", "namespace", "errorOnMissing"],
        Secret = "secret" ["key"],
        Read = "read" ["path"],
        FileSize = "fileSize" ["path"],
        FileExists = "fileExists" ["path"],
        IsFileEmpty = "isFileEmpty" ["path"],
    }
}

builtins! {
    /// `value is test`.
    Test {
        Null = "null" [],
        Defined = "defined" [],
        Empty = "empty" [],
        Json = "json" [],
        Even = "even" [],
        Odd = "odd" [],
        Iterable = "iterable" [],
        Map = "map" [],
    }
}

impl Function {
    /// `max(a, b, c...)` and `min(...)` take any number of positional arguments.
    pub(crate) fn is_variadic(&self) -> bool {
        matches!(self, Self::Max | Self::Min)
    }
}
