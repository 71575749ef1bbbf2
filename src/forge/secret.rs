//! The forge's credentials: the webhook secret, an API token, the App's
//! private key. Each is its own type so one cannot be passed where another is
//! meant; `Debug` and `Display` print `***`, so a secret that slips into a log
//! line or an error message is still not disclosed. Only `expose` reads it,
//! at the one place that uses it.

use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> $name {
                $name(value.into())
            }

            /// The secret itself: only for the code that signs or authenticates with it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("***")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("***")
            }
        }
    };
}

secret_type!(
    /// The shared secret GitHub signs webhook deliveries with (`X-Hub-Signature-256`).
    WebhookSecret
);

secret_type!(
    /// A GitHub API token (a fine-grained or classic personal access token,
    /// or an Actions token): statuses instead of check runs.
    GitHubToken
);

secret_type!(
    /// The GitHub App's RSA private key, PEM text, which signs the App JWT.
    AppPrivateKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let printed = format!(
            "{:?} {} {:?} {:?}",
            WebhookSecret::new("hunter2"),
            WebhookSecret::new("hunter2"),
            GitHubToken::new("ghp_hunter2"),
            AppPrivateKey::new("-----BEGIN RSA PRIVATE KEY-----hunter2"),
        );
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(printed, "*** *** *** ***");
        assert_eq!(GitHubToken::new("t").expose(), "t");
    }
}
