"""The benchmark: takes the Value Portrait data root, gives what every later stage reads.

`layout` names every upstream path and finds the data root; `fetch` downloads and verifies it
at a pinned commit; `dataset` loads the 520 items, correlations and p-values as arrays;
`prompts` renders the paper's six prompt versions byte-exact; `parser` turns an answer into a
rating (the authors' parser and a strict one); `conditions` reads the persona and steering
texts (`personas.toml`); `dims` names the dimensions, versions and answer phrases.
"""
