"""The sweep config: takes the TOML file of SPEC §2, gives plain dataclasses every stage reads.

`schema` holds the dataclasses and `load_config` (validated before any request is made, every
error naming the field and the fix); `models` expands the compact spellings (model lists,
`[providers.<p>]` defaults); `tomlvalues` checks TOML values against the type hints; `digest`
gives a config's meaning and its hash. It sits below providers: a provider's own settings are
validated through the `ProviderFacts` it registers here (`schema.register_provider`).
"""
