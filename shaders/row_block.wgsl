// ---- Row blocks of the norm kernels (appended to layernorm.wgsl, layernorm-packed.wgsl and adaln.wgsl by their
// TS ops). Uses the including kernel's Params fields rows, groups_x, group_rows, block_rows and blocks: workgroup
// wid.x + wid.y·groups_x (of a folded 2-D grid) is group · blocks + block and takes rows [r0, r1) of its weight
// group (adaLN: its sample). Spare workgroups past the last group get an empty block (r0 = r1): they return.
struct RowBlock {
  blk: u32,
  grp: u32,
  r0: u32,
  r1: u32,
}

fn row_block(wid: vec3u) -> RowBlock {
  let blk = wid.x + wid.y * p.groups_x;
  let grp = blk / p.blocks;
  let g0 = grp * p.group_rows;
  if (g0 >= p.rows) {
    return RowBlock(blk, grp, 0u, 0u);
  }
  let r0 = g0 + (blk % p.blocks) * p.block_rows;
  return RowBlock(blk, grp, r0, min(r0 + p.block_rows, min(g0 + p.group_rows, p.rows)));
}
