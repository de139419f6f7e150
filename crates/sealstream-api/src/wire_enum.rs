//! [`wire_enum!`]: an enum whose serde form is a fixed set of names.

/// Declares an enum whose values travel as fixed names (`"awaiting-payment"`,
/// `"owner"`): `as_str`, `parse`, `ALL`, `Display`, `FromStr`, and serde
/// impls writing and reading exactly those names. A name outside the set is
/// refused with the message given after `refuse`, so a server decoding a
/// request names the field and says what it expected
/// (`purpose: expected release or confirmation`).
///
/// ```
/// sealstream_api::wire_enum! {
///     /// A colour.
///     pub enum Colour refuse "expected red or green" {
///         /// Red.
///         Red = "red",
///         /// Green.
///         Green = "green",
///     }
/// }
/// assert_eq!(Colour::parse("red"), Some(Colour::Red));
/// assert_eq!(serde_json::to_string(&Colour::Green).unwrap(), "\"green\"");
/// let e = serde_json::from_str::<Colour>("\"blue\"").unwrap_err();
/// assert!(e.to_string().starts_with("expected red or green"));
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident refuse $refusal:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name on the wire (and in the database).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The value of a name, if it is one.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::errors::UnknownName;

            fn from_str(text: &str) -> Result<$name, Self::Err> {
                $name::parse(text).ok_or($crate::errors::UnknownName($refusal))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| <D::Error as ::serde::de::Error>::custom($refusal))
            }
        }
    };
}
