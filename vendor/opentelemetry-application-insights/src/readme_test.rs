doc_comment::doctest!("../README.md");
