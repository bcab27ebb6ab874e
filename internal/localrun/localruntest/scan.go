package localruntest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
)

// Hit is one file that holds one of the needles.
type Hit struct {
	Path   string
	Needle string
	Mode   fs.FileMode
}

// ScanResult is what FindInFiles saw.
type ScanResult struct {
	Hits    []Hit
	Files   int      // regular files read
	Bytes   int64    // bytes read
	Skipped []string // regular files larger than the bound, not read
}

// FindInFiles reads every regular file under each root (symbolic links are not followed) no
// larger than maxSize and reports which files contain which needles. Unreadable files are
// reported as hits of the needle "<unreadable: ...>" so that a scan never passes by missing
// them.
func FindInFiles(roots []string, needles []string, maxSize int64) ScanResult {
	var res ScanResult
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				res.Hits = append(res.Hits, Hit{Path: path, Needle: "<unreadable: " + err.Error() + ">"})
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil // removed while walking
			}
			if info.Size() > maxSize {
				res.Skipped = append(res.Skipped, path)
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				if !os.IsNotExist(err) {
					res.Hits = append(res.Hits, Hit{Path: path, Needle: "<unreadable: " + err.Error() + ">"})
				}
				return nil
			}
			res.Files++
			res.Bytes += int64(len(data))
			for _, n := range needles {
				if bytes.Contains(data, []byte(n)) {
					res.Hits = append(res.Hits, Hit{Path: path, Needle: n, Mode: info.Mode()})
				}
			}
			return nil
		})
	}
	return res
}
