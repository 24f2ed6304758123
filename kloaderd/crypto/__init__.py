"""The crypto API's registration side (crypto/): algorithms and templates."""
