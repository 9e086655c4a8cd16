//! What the bench binaries share (the benchmarks themselves: docs/perf.md).

/// The first lcore of `-l LIST` that is not the main lcore (`--main-lcore`,
/// or the first of the list).
pub fn worker_lcore(eal: &[String]) -> Option<u32> {
    let (mut list, mut main) = (None::<String>, None::<u32>);
    let mut it = eal.iter();
    while let Some(a) = it.next() {
        if a == "-l" {
            list = it.next().cloned();
        } else if let Some(l) = a.strip_prefix("-l").filter(|l| !l.is_empty()) {
            list = Some(l.to_string());
        } else if a == "--main-lcore" {
            main = it.next().and_then(|m| m.parse().ok());
        } else if let Some(m) = a.strip_prefix("--main-lcore=") {
            main = m.parse().ok();
        }
    }
    let mut lcores = Vec::new();
    for part in list?.split(',') {
        match part.split_once('-') {
            Some((a, b)) => lcores.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => lcores.push(part.parse().ok()?),
        }
    }
    let main = main.or_else(|| lcores.first().copied())?;
    lcores.into_iter().find(|&l| l != main)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn worker_lcore_is_the_first_non_main() {
        assert_eq!(worker_lcore(&v("-l 0,1 --main-lcore 1")), Some(0));
        assert_eq!(worker_lcore(&v("-l 0,1 --main-lcore 0")), Some(1));
        assert_eq!(worker_lcore(&v("-l 0-3")), Some(1));
        assert_eq!(worker_lcore(&v("-l2,5 --main-lcore=2")), Some(5));
        assert_eq!(worker_lcore(&v("-l 0")), None);
        assert_eq!(worker_lcore(&v("--lcores=0@1,1@0")), None);
    }
}
