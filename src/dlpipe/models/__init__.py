"""Plain nn.Module families, one file each, named by conf/model/*.yaml's `_target_`;
`registry` builds any model, dlpipe's or a user's, from its config."""
