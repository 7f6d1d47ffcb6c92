//! Tests of the raw parse: pieces, the fast path, errors by line, quoted files.

use super::*;

#[test]
fn parse_int_accepts_integers_and_integral_floats_only() {
    assert_eq!(parse_int(b"42"), Some(42));
    assert_eq!(parse_int(b" -7 "), Some(-7));
    assert_eq!(parse_int(b"12.0"), Some(12));
    assert_eq!(parse_int(b"12.5"), None);
    assert_eq!(parse_int(b"x1"), None);
    assert_eq!(parse_int(b""), None);
    assert_eq!(parse_int(b"99999999999999999999"), None);
}

/// A file of `rows` action lines (CRLF line ends when `crlf`), in any number of pieces.
fn actions_file(dir: &Path, rows: usize, crlf: bool) -> PathBuf {
    let end = if crlf { "\r\n" } else { "\n" };
    let mut text = format!("userid,feedid,date_,device,{}{end}", ACTIONS.join(","));
    for r in 0..rows {
        let bits: Vec<String> = (0..ACTIONS.len()).map(|a| ((r >> a) & 1).to_string()).collect();
        text += &format!("{},{},{},{},{}{end}", r % 13, r * 7 % 101, 1 + r % 14, r % 3, bits.join(","));
    }
    let path = dir.join("user_action.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn pieces_parse_to_the_rows_of_one_piece_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    for crlf in [false, true] {
        let path = actions_file(dir.path(), 1000, crlf);
        let one = read_actions_in(&path, 1).unwrap();
        assert_eq!(one.rows(), 1000);
        assert_eq!((one.userid[999], one.feedid[999], one.day[999], one.actions[999]), (999 % 13, 999 * 7 % 101, (1 + 999 % 14) as u8, (999 & 127) as u8));
        for pieces in [2, 3, 7, 64] {
            let many = read_actions_in(&path, pieces).unwrap();
            assert_eq!((&many.userid, &many.feedid, &many.day), (&one.userid, &one.feedid, &one.day), "{pieces} pieces");
            assert_eq!((&many.device, &many.actions), (&one.device, &one.actions), "{pieces} pieces");
        }
    }
}

#[test]
fn lines_off_the_fast_path_parse_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user_action.csv");
    let head = format!("userid,feedid,date_,device,{},play\n", ACTIONS.join(","));
    let text = head + "7,8,9,1,1,0,0,0,0,0,1,55\n +7 ,08,9.0,1,1,0,0,0,0,0, 1 ,x\n\n7,8,9,1,1,0,0,0,0,0,1,\n";
    std::fs::write(&path, text).unwrap();
    let a = read_actions_in(&path, 1).unwrap();
    assert_eq!((a.userid, a.feedid, a.day, a.device, a.actions), (vec![7; 3], vec![8; 3], vec![9; 3], vec![1; 3], vec![65; 3]));
}

#[test]
fn an_error_in_a_later_piece_names_its_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = actions_file(dir.path(), 1000, false);
    let text = std::fs::read_to_string(&path).unwrap();
    // Line 901 holds row 899 (line 1 is the header); two bad lines, the first one wins.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[900] = lines[900].replacen(',', ",x", 1);
    lines[950] = lines[950].replacen(',', ",y", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    for pieces in [1, 4] {
        let e = read_actions_in(&path, pieces).unwrap_err().to_string();
        assert!(e.contains("line 901, column `feedid`: expected an integer, found `x"), "{pieces} pieces: {e}");
    }
    // A short row is named by its line too.
    lines[900] = "1,2,3".into();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let e = read_actions_in(&path, 4).unwrap_err().to_string();
    assert!(e.contains("line 901") && e.contains("3 fields, the header has 11"), "{e}");
}

#[test]
fn quoted_files_and_feeds_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed_info.csv");
    let mut text = String::from("feedid,authorid,videoplayseconds,description,bgm_song_id,bgm_singer_id,manual_tag_list\n");
    for f in 0..300 {
        text += &format!("{f},{},{}.5,,{},,{}\n", f % 7, f % 60, f % 5, (0..f % 4).map(|t| (f + t).to_string()).collect::<Vec<_>>().join(";"));
    }
    std::fs::write(&path, &text).unwrap();
    let one = read_feeds_in(&path, 1).unwrap();
    let many = read_feeds_in(&path, 5).unwrap();
    assert_eq!((one.feedid.len(), &one.tag_offsets, &one.tags), (300, &many.tag_offsets, &many.tags));
    assert_eq!((&one.authorid, &one.bgm_song_id, &one.bgm_singer_id), (&many.authorid, &many.bgm_song_id, &many.bgm_singer_id));
    assert_eq!(&one.tags[one.tag_offsets[7]..one.tag_offsets[8]], &[7, 8, 9]);
    // A feed repeated in a later piece names both lines.
    std::fs::write(&path, text.replacen("250,5,10.5", "3,5,10.5", 1)).unwrap();
    let e = read_feeds_in(&path, 5).unwrap_err().to_string();
    assert!(e.contains("line 252, column `feedid`: feedid 3 appears twice (first on line 5)"), "{e}");
    // A quoted field may hold a line end: such a file is one piece.
    let quoted = text.replacen("1,1,1.5,,", "1,1,1.5,\"two\nlines\",", 1);
    std::fs::write(&path, quoted).unwrap();
    let q = read_feeds_in(&path, 5).unwrap();
    assert_eq!((&q.feedid, &q.tags), (&one.feedid, &one.tags));
}
